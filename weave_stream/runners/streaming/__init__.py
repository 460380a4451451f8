"""The streaming runner: Faust agents on Kafka. The only package that imports faust."""

from __future__ import annotations

from weave_stream.runners.streaming.app import create_app, run_worker

__all__ = ["create_app", "run_worker"]
