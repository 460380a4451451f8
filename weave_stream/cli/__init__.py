"""The ``weave-stream`` command line: thin commands over the modules of the package.

Each module of this package defines the commands of one area and is registered
below; every command that talks to Kafka takes the shared broker options.
"""

from __future__ import annotations

from weave_stream.cli.main import cli, main

__all__ = ["cli", "main"]
