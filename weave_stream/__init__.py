"""weave-stream."""
