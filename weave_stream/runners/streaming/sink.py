"""The workers' sink: a :class:`RecordSink` flushed when the Faust app shuts down.

An agent awaits :meth:`RecordSink.write` before it moves to its next micro-batch, and
Faust commits a source offset only after that, so a crash can repeat a write but
never lose one.
"""

from __future__ import annotations

import faust

from weave_stream.broker.sink import OutgoingRecord, RecordSink
from weave_stream.config import Settings

__all__ = ["OutgoingRecord", "RecordSink", "attach_sink"]


def attach_sink(app: faust.App, settings: Settings) -> RecordSink:
    """A sink for ``app``'s data topics, stopped (flushed) when the app shuts down."""
    sink = RecordSink(
        settings.broker_address,
        app.conf.producer_max_request_size,
        idempotent=settings.idempotent,
    )
    app.on_before_shutdown.connect(lambda *args, **kwargs: sink.stop())
    return sink
