"""What a broker can do, asked of the broker itself: never inferred from how its address came.

One probe per process that talks to Kafka: an ApiVersions exchange (done by the
client on connect), a Metadata request (the cluster id) and an InitProducerId
attempt -- the request an idempotent producer sends first, in the version aiokafka
sends (v0). The answers decide:

* ``idempotent``: the InitProducerId attempt succeeded (Kafka: yes; the embedded
  Tansu broker answers ``UnknownError`` to aiokafka's v0 request);
* ``transactions``: idempotent, and the transaction APIs (AddPartitionsToTxn,
  AddOffsetsToTxn, EndTxn, TxnOffsetCommit) are advertised;
* ``embedded``: the broker is Tansu (its cluster id), whose measured gaps the
  workers work around (shared/BROKER.md) and whose group timings are short.

:func:`capabilities_from` is the pure decision; :func:`probe_broker` asks a broker.

>>> kafka = capabilities_from("kafka://k:9092", "MkU3OEVBNTcwNTJENDM2Qk",
...                           {22: (0, 4), 24: (0, 3), 25: (0, 3), 26: (0, 3), 28: (0, 3)}, 0)
>>> kafka.kind, kafka.idempotent, kafka.transactions
('kafka', True, True)
>>> tansu = capabilities_from("kafka://127.0.0.1:9092", "tansu_cluster", {22: (0, 5)}, -1)
>>> tansu.kind, tansu.idempotent, tansu.transactions
('embedded', False, False)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from weave_stream.config import Settings
from weave_stream.errors import BrokerError

__all__ = [
    "BrokerCapabilities",
    "apply_capabilities",
    "capabilities_from",
    "explain_producer_error",
    "probe_broker",
    "probe_broker_sync",
    "resolve_broker",
]

INIT_PRODUCER_ID = 22
TRANSACTION_APIS = (24, 25, 26, 28)  # AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit
_EMBEDDED_CLUSTER_PREFIX = "tansu"


@dataclass(frozen=True)
class BrokerCapabilities:
    """What the broker at ``url`` answered."""

    url: str
    cluster_id: str | None
    idempotent: bool
    transactions: bool
    embedded: bool
    init_producer_error: str | None = None

    @property
    def kind(self) -> Literal["embedded", "kafka"]:
        """``embedded`` for the Tansu broker (its workarounds and timings), else ``kafka``."""
        return "embedded" if self.embedded else "kafka"

    def describe(self) -> str:
        """One line: what the broker is and can do.

        >>> capabilities_from("kafka://h:1", "tansu_cluster", {}, -1).describe()
        'embedded broker (Tansu), no idempotent producer, no transactions'
        """
        what = "embedded broker (Tansu)" if self.embedded else f"Kafka cluster {self.cluster_id}"
        idempotent = "idempotent producer" if self.idempotent else "no idempotent producer"
        transactions = "transactions" if self.transactions else "no transactions"
        return f"{what}, {idempotent}, {transactions}"


def capabilities_from(
    url: str,
    cluster_id: str | None,
    api_versions: Mapping[int, tuple[int, int]],
    init_producer_error_code: int | None,
) -> BrokerCapabilities:
    """Decide the capabilities from the broker's answers (see the module docstring)."""
    idempotent = init_producer_error_code == 0
    transactions = idempotent and all(api in api_versions for api in TRANSACTION_APIS)
    embedded = (cluster_id or "").lower().startswith(_EMBEDDED_CLUSTER_PREFIX)
    error = None
    if init_producer_error_code not in (0, None):
        from aiokafka.errors import for_code

        error = f"{for_code(init_producer_error_code).__name__} ({init_producer_error_code})"
    return BrokerCapabilities(url, cluster_id, idempotent, transactions, embedded, error)


async def probe_broker(url: str, timeout: float = 10.0) -> BrokerCapabilities:
    """Ask the broker at ``url`` (``kafka://host:port[,...]``) what it can do.

    Raises :class:`BrokerError` naming the address when it cannot be reached.
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.metadata import MetadataRequest
    from aiokafka.protocol.transaction import InitProducerIdRequest

    address = url.removeprefix("kafka://")
    client = AIOKafkaClient(bootstrap_servers=address, request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await client.bootstrap()
            node = client.get_random_node()
            connection = await client._get_conn(node)  # holds the ApiVersions answer
            versions = dict(getattr(connection, "_versions", {}) or {})
            metadata = await client.send(node, MetadataRequest([]))
            code: int | None = None
            if INIT_PRODUCER_ID in versions:
                answer = await client.send(
                    node, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000)
                )
                code = int(answer.error_code)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerError(
            f"cannot reach the broker at {url} ({exc!r}); check that it runs, or name another "
            "with --broker kafka://host:port (WEAVE_STREAM_BROKER)"
        ) from None
    finally:
        await client.close()
    return capabilities_from(url, getattr(metadata, "cluster_id", None), versions, code)


def probe_broker_sync(url: str, timeout: float = 10.0) -> BrokerCapabilities:
    """:func:`probe_broker` from synchronous code, inside a running event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(probe_broker(url, timeout))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop runs here: use another
        return pool.submit(asyncio.run, probe_broker(url, timeout)).result()


def explain_producer_error(exc: BaseException, broker: str, idempotent: bool) -> str | None:
    """The fix for a producer failure caused by a capability the broker lacks, else None.

    Only the errors an InitProducerId refusal raises count (aiokafka raises the
    broker's error code as is; Tansu answers ``UnknownError``).

    >>> from aiokafka.errors import UnknownError
    >>> explain_producer_error(UnknownError(), "kafka://h:1", idempotent=True)[:57]
    'the broker at kafka://h:1 refused the idempotent producer'
    >>> explain_producer_error(UnknownError(), "kafka://h:1", idempotent=False) is None
    True
    """
    if not idempotent:
        return None
    from aiokafka import errors

    refusals = (
        errors.UnknownError,
        errors.UnsupportedVersionError,
        errors.ClusterAuthorizationFailedError,
        errors.UnsupportedForMessageFormatError,
    )
    if not isinstance(exc, refusals):
        return None
    return (
        f"the broker at {broker} refused the idempotent producer (InitProducerId failed: "
        f"{type(exc).__name__}); it does not support idempotent producers (the embedded "
        "broker does not): set idempotent_producer=auto (WEAVE_STREAM_IDEMPOTENT_PRODUCER) "
        "so that weave-stream asks the broker, or off"
    )


def apply_capabilities(settings: Settings, capabilities: BrokerCapabilities) -> Settings:
    """``settings`` with ``broker_kind`` and ``idempotent_producer`` decided by the probe.

    What the user set explicitly stays; ``auto`` becomes what the broker answered.
    ``exactly_once`` on a broker without transactions is refused with the fix.
    """
    if settings.processing_guarantee == "exactly_once" and not capabilities.transactions:
        raise BrokerError(
            f"processing_guarantee=exactly_once needs Kafka transactions, and the broker at "
            f"{capabilities.url} has none ({capabilities.describe()}); set "
            "processing_guarantee=at_least_once (readers deduplicate), or point --broker at a "
            "Kafka cluster"
        )
    update: dict[str, str] = {"broker": capabilities.url}
    if settings.broker_kind == "auto":
        update["broker_kind"] = capabilities.kind
    if settings.idempotent_producer == "auto":
        update["idempotent_producer"] = "on" if capabilities.idempotent else "off"
    return Settings.model_validate({**settings.model_dump(), **update})


def resolve_broker(settings: Settings, timeout: float = 10.0) -> Settings:
    """Probe ``settings.broker`` (it must be set) and apply what it answered.

    Settings that say everything already (no ``auto`` left) are returned as they are.
    """
    if settings.broker is None:
        raise BrokerError("no broker to probe; name one with --broker kafka://host:port")
    if "auto" not in (settings.broker_kind, settings.idempotent_producer):
        return settings
    return apply_capabilities(settings, probe_broker_sync(settings.broker, timeout))
