"""What the tests share: helpers, loopback servers, data. Test modules import from here,
from ``tests.assets`` and from the package, never from each other (checked by
``tests/unit/test_tests_layout.py``); fixtures come from ``tests/conftest.py``.

- ``waiting``: :func:`~tests.support.waiting.wait_until` (and its async twin), the one
  bounded poll every wait goes through;
- ``records``: produce to and read from the session broker's topics, consumer-group progress;
- ``metrics``: a worker's /metrics sample, awaited;
- ``topologies``: the assets, registering them, awaiting derived values, topology workers;
- ``aggregates``: the windowed-aggregate topology of the streaming and CLI tests;
- ``cli``: ``weave-stream`` run as a child process;
- ``processes``: processes seen through /proc (alive, gone, children);
- ``calls``: call records shared across tiers; ``windows_rows``: rows and ground truth
  for the window tests; ``drift_corpus``: real embeddings for the drift tests;
- ``promql``: metric names in PromQL and in the worker's export;
- ``servers``: an OpenAI-compatible judge and Slack/webhook receivers on loopback.
"""
