"""Every Kafka topic and consumer-group name weave-stream uses, built here and nowhere else.

All names derive from one prefix (the ``topic_prefix`` setting, default ``weave``):

::

    <prefix>.calls                          raw calls as producers write them
    <prefix>.calls.valid / .calls.dlq       validated calls / dead letters
    <prefix>.registry                       registered topologies (compacted)
    <prefix>.objects                        op code, files and tables the collector kept (compacted)
    <prefix>.derived.<topology>.<column>    the values of one derived column
    <prefix>.monitor.<topology>.<monitor>   a monitor's observations (one partition)
    <prefix>.reference.<topology>.<monitor> a monitor's reference (compacted)
    <prefix>.alerts / .alerts.status        alerts and their delivery status
    <prefix>.workers                        each worker's status (compacted)
    weave-stream.<prefix>                   the workers' group (ingest, notifier)
    weave-stream.<prefix>.topology.<name>   one topology's group (and Faust app id)
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

    def derived(self, topology: str, column: str) -> str:
        """The stream of values of one derived column."""
        return f"{self.prefix}.derived.{topology}.{column}"

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
