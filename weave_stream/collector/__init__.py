"""The collector: real clients send calls straight to weave-stream, before ingest in the flow.

::

    weave client (trace-server API) ─┐
    OpenTelemetry exporter (OTLP) ───┴─► [collector] ─► <prefix>.calls ─► [ingest] ─► ...
                                            ├─► <prefix>.objects (op code, files, tables)
                                            └─► --upstream: the same requests to W&B

``server`` (routes), ``bodies`` (request bodies → call records), ``otlp`` and
``genai`` (spans → calls), ``objects`` (op code and digests), ``delivery`` (Kafka
acknowledgements, 503), ``auth`` (API keys, loopback only), ``upstream`` (the tee),
``serve`` (``weave-stream collector``).
"""
