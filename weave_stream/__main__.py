"""``python -m weave_stream`` runs the command line."""

from weave_stream.cli import main

main()
