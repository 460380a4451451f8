"""Per-event work a weave-stream worker does not need, dropped (measured by the benches).

Faust's Monitor sensor times every event for Faust's own web views, which a
weave-stream worker does not serve (its /metrics are its own). And the objects of
start-up (Faust, pandas, scipy: ~2 x 10^5) are frozen out of the cyclic garbage
collector, which otherwise walks them again and again while each event allocates its
dictionaries.
"""

from __future__ import annotations

import contextlib
import gc

import faust

__all__ = ["lighten_hot_path"]


def lighten_hot_path(app: faust.App) -> None:
    """Once ``app`` has started: drop its Monitor sensor and freeze start-up objects."""

    @app.task
    async def lighten() -> None:
        with contextlib.suppress(KeyError):
            app.sensors.remove(app.monitor)
        gc.freeze()
