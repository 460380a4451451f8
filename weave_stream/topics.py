"""Every Kafka topic and consumer-group name weave-stream uses, built here and nowhere else.

All names derive from one prefix (the ``topic_prefix`` setting, default ``weave``):

::

    <prefix>.calls                          raw calls as producers write them
    <prefix>.calls.valid / .calls.dlq       validated calls / dead letters
    <prefix>.registry                       registered topologies (compacted)
    <prefix>.objects                        op code, files and tables the collector kept (compacted)
    <prefix>.derived.<topology>.<column>    the values of one derived column
    <prefix>.subcalls.<topology>            the sub-calls behind its values (a tree a record)
    <prefix>.monitor.<topology>.<monitor>   a monitor's observations (one partition)
    <prefix>.reference.<topology>.<monitor> a monitor's reference (compacted)
    <prefix>.alerts / .alerts.status        alerts and their delivery status
    <prefix>.datasets                       calls a topology's datasets: rules matched
    <prefix>.workers                        each worker's status (compacted)
    weave-stream.<prefix>                   the workers' group (ingest, notifier)
    weave-stream.<prefix>.topology.<name>   one topology's group (and Faust app id)
    weave-stream.<prefix>.store             the store sinks' group (valid calls, derived, alerts)
    weave-stream.<prefix>.reconcile.<name>  how far its reconciler checked the calls
    <group>-<table>-changelog               a Faust table's changelog

>>> names = TopicNames("demo")
>>> names.derived("text_extract", "doc_class")
'demo.derived.text_extract.doc_class'
>>> names.topology_group("text_extract")
'weave-stream.demo.topology.text_extract'
>>> names.changelog(names.topology_group("text_extract"), "aggregates")
'weave-stream.demo.topology.text_extract-aggregates-changelog'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AGGREGATES_TABLE", "TopicNames"]

AGGREGATES_TABLE = "aggregates"
"""The Faust table of a topology worker that holds its windowed aggregates."""


@dataclass(frozen=True)
class TopicNames:
    """Every Kafka topic and consumer group weave-stream uses, derived from one prefix."""

    prefix: str

    @property
    def calls(self) -> str:
        """Raw calls as producers write them (Weave's call shapes, keyed by call id)."""
        return f"{self.prefix}.calls"

    @property
    def dlq(self) -> str:
        """Dead letters: the raw record, with the reason in its headers."""
        return f"{self.prefix}.calls.dlq"

    @property
    def valid(self) -> str:
        """Validated, merged (start + end) calls in canonical JSON, keyed by call id."""
        return f"{self.prefix}.calls.valid"

    @property
    def objects(self) -> str:
        """Objects the weave client sent the collector: op code, files, tables (compacted)."""
        return f"{self.prefix}.objects"

    @property
    def registry(self) -> str:
        """Registered topologies (compacted: name -> spec)."""
        return f"{self.prefix}.registry"

    @property
    def alerts(self) -> str:
        """Alerts raised by monitors."""
        return f"{self.prefix}.alerts"

    @property
    def alerts_status(self) -> str:
        """Delivery status of each alert per target (compacted: alert id -> status)."""
        return f"{self.prefix}.alerts.status"

    @property
    def workers(self) -> str:
        """Each worker's status: its components, restarts, last errors (compacted: worker id)."""
        return f"{self.prefix}.workers"

    @property
    def datasets(self) -> str:
        """Calls matched by a topology's ``datasets:`` rules, with their mapped fields
        (keyed by call id); the store sink adds them to the datasets."""
        return f"{self.prefix}.datasets"

    def derived(self, topology: str, column: str) -> str:
        """The stream of values of one derived column."""
        return f"{self.prefix}.derived.{topology}.{column}"

    def subcalls(self, topology: str) -> str:
        """The sub-calls behind one topology's values (ops called by its columns' ops): one
        record per value's tree, apart from the values so that no aggregate counts them."""
        return f"{self.prefix}.subcalls.{topology}"

    def observations(self, topology: str, monitor: str) -> str:
        """The one-partition topic a drift monitor reads its observations from."""
        return f"{self.prefix}.monitor.{topology}.{monitor}"

    def reference(self, topology: str, monitor: str) -> str:
        """The compacted topic holding a drift monitor's reference embeddings."""
        return f"{self.prefix}.reference.{topology}.{monitor}"

    @property
    def worker_group(self) -> str:
        """The consumer group (and Faust app id) of every worker: ingest and notifier."""
        return f"weave-stream.{self.prefix}"

    def topology_group(self, topology: str) -> str:
        """The consumer group (and Faust app id) of one topology's worker processes."""
        return f"weave-stream.{self.prefix}.topology.{topology}"

    def reconcile_group(self, topology: str) -> str:
        """The reconciler's cursor over the valid calls of one topology (it never joins:
        its committed offsets say how far the calls were checked for missing values)."""
        return f"weave-stream.{self.prefix}.reconcile.{topology}"

    @property
    def store_group(self) -> str:
        """The consumer group of the store sinks (one per worker; offsets live in the store)."""
        return f"weave-stream.{self.prefix}.store"

    def store_pattern(self) -> str:
        """The topics the store sink reads: valid calls, every derived column, alerts,
        dataset candidates, every topology's sub-calls.

        >>> import re
        >>> pattern = re.compile(TopicNames("w").store_pattern())
        >>> [bool(pattern.match(t)) for t in ("w.calls.valid", "w.derived.t.c", "w.alerts",
        ...                                   "w.alerts.status", "w.calls", "w.datasets",
        ...                                   "w.subcalls.t")]
        [True, True, True, False, False, True, True]
        """
        prefix = re.escape(self.prefix)
        return rf"^{prefix}\.(calls\.valid|alerts|datasets|derived\..+|subcalls\..+)$"

    @property
    def dlq_reingest_group(self) -> str:
        """The consumer group of ``weave-stream dlq --reingest`` (resumable)."""
        return f"weave-stream.{self.prefix}.dlq-reingest"

    @property
    def ingest_agent(self) -> str:
        """The name of the ingest agent in a worker's Faust app."""
        return f"{self.prefix}-ingest"

    @property
    def notifier_agent(self) -> str:
        """The name of the notifier agent in a worker's Faust app."""
        return f"{self.prefix}-notify"

    @staticmethod
    def changelog(app_id: str, table: str) -> str:
        """The changelog topic Faust keeps for ``table`` of the app ``app_id``."""
        return f"{app_id}-{table}-changelog"

    def aggregates_changelog(self, topology: str) -> str:
        """The changelog of a topology's windowed aggregates table."""
        return self.changelog(self.topology_group(topology), AGGREGATES_TABLE)
