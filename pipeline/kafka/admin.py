"""Topic creation for the stream families, and the quick checks the command line makes first."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewPartitions, NewTopic

from pipeline.core.registry import stream_topics
from pipeline.core.topics import drift_alerts_topic
from pipeline.kafka.client_config import (
    ConnectionProblems,
    KafkaConfig,
    KafkaTarget,
    bootstrap_of,
    client_config,
)
from pipeline.kafka.exceptions import KafkaConnectFailed, KafkaUnreachable, TopicConfigError

# Provenance is keyed by request id and is what replay reads: keep it longer than the rest.
_TOPIC_CONFIG = {
    "provenance": {"retention.ms": str(30 * 24 * 3600 * 1000)},
    "dlq": {"retention.ms": str(30 * 24 * 3600 * 1000)},
}

# librdkafka's own log lines of the command-line clients (connection refused, retries): to this
# logger instead of raw stderr. Its NullHandler keeps Python's last-resort handler from printing
# them when logging is not configured; configured logging (INFERSTREAM_LOG_LEVEL) still sees them.
TOOL_LOGGER = logging.getLogger("inferstream.librdkafka.tools")
TOOL_LOGGER.addHandler(logging.NullHandler())

# How long the command line waits for the first broker answer before calling Kafka unreachable.
CONNECT_TIMEOUT_S = 5.0

_UNREACHABLE_CODES = frozenset(
    {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
)
_INVALID_REPLICATION_FACTOR = 38
_TOPIC_ALREADY_EXISTS = 36


def tool_client_config(
    bootstrap: KafkaTarget, problems: ConnectionProblems | None = None
) -> dict[str, Any]:
    """librdkafka settings of the command-line clients: quiet, quick to give up connecting.

    `bootstrap` is Settings or a bare bootstrap (then the process's security settings apply);
    `problems` records authentication and TLS failures for the error message."""
    return KafkaConfig(
        {
            **client_config(bootstrap),
            **({"error_cb": problems} if problems is not None else {}),
            "logger": TOOL_LOGGER,
            "socket.connection.setup.timeout.ms": int(CONNECT_TIMEOUT_S * 1000),
            "allow.auto.create.topics": False,
        }
    )


def is_unreachable(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in _UNREACHABLE_CODES


class _Admin(AdminClient):
    """An AdminClient that keeps its connection problems (for `unreachable`)."""

    def __init__(self, target: KafkaTarget) -> None:
        self.problems = ConnectionProblems()
        config = tool_client_config(target, self.problems)
        config.pop("allow.auto.create.topics")  # not an AdminClient setting
        super().__init__(config)


def unreachable(bootstrap: str, timeout: float, client: object) -> KafkaUnreachable:
    """The error for a client that got no answer: why, when librdkafka said (auth, TLS)."""
    problems = getattr(client, "problems", None)
    if isinstance(problems, ConnectionProblems):
        # librdkafka hands errors to error_cb only from poll(); nothing is assigned yet, so a
        # consumer's poll(0) serves callbacks and returns no record
        client.poll(0)  # type: ignore[attr-defined]
    reason = problems.reason() if isinstance(problems, ConnectionProblems) else None
    if reason is not None:
        return KafkaConnectFailed(bootstrap, reason)
    return KafkaUnreachable(bootstrap, f"no answer within {timeout:g} s")


def cluster_metadata(
    bootstrap: KafkaTarget, timeout: float = CONNECT_TIMEOUT_S, admin: AdminClient | None = None
) -> ClusterMetadata:
    """The cluster's topics and brokers; KafkaUnreachable when no broker answers in `timeout`
    (KafkaConnectFailed, one of them, when the credentials or the certificate were refused)."""
    if admin is None:
        admin = _Admin(bootstrap)
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        if is_unreachable(exc):
            raise unreachable(bootstrap_of(bootstrap), timeout, admin) from None
        raise


@dataclass(frozen=True)
class TopicState:
    name: str
    created: bool
    partitions: int
    wanted_partitions: int = 0  # what the settings ask for
    added: int = 0  # partitions added by this call (add_partitions=True)

    @property
    def short(self) -> bool:
        """Fewer partitions than asked for (more is fine: partitions are never removed)."""
        return self.partitions < self.wanted_partitions


def topic_names(streams: Iterable[str], namespace: str = "") -> list[str]:
    names = [topic for stream in streams for topic in stream_topics(stream, namespace).topics]
    return [*names, drift_alerts_topic(namespace)]


def ensure_topics(
    bootstrap: KafkaTarget,
    streams: Iterable[str],
    partitions: int,
    replication: int,
    namespace: str = "",
    timeout: float = 30,
    add_partitions: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> list[TopicState]:
    """Create missing topics of the given stream families; existing ones are left as they are.

    With `add_partitions`, existing topics with fewer than `partitions` partitions get more.
    Raises KafkaUnreachable when no broker answers, TopicConfigError when the cluster cannot
    hold `replication` replicas, ValueError for partitions or replication below 1.
    """
    if partitions < 1:
        raise ValueError(f"partitions={partitions} must be >= 1")
    if replication < 1:
        raise ValueError(f"replication={replication} must be >= 1")
    admin = _Admin(bootstrap)
    metadata = cluster_metadata(bootstrap, connect_timeout, admin)
    existing = metadata.topics
    wanted = topic_names(streams, namespace)
    alerts = drift_alerts_topic(namespace)

    def wanted_partitions(name: str) -> int:
        return 1 if name == alerts else partitions

    missing = [
        NewTopic(
            name,
            num_partitions=wanted_partitions(name),
            replication_factor=replication,
            config=_TOPIC_CONFIG.get(name.rsplit(".", 1)[-1], {}),
        )
        for name in wanted
        if name not in existing
    ]
    brokers = len(metadata.brokers)
    if missing and brokers and replication > brokers:
        raise TopicConfigError(_replication_message(replication, brokers))
    created = set()
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                future.result()
                created.add(name)
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == _INVALID_REPLICATION_FACTOR:
                    raise TopicConfigError(_replication_message(replication, brokers)) from None
                if code != _TOPIC_ALREADY_EXISTS:  # another process won the race
                    raise
    added: dict[str, int] = {}
    if add_partitions:
        grow = [
            NewPartitions(name, wanted_partitions(name))
            for name in wanted
            if name in existing and len(existing[name].partitions) < wanted_partitions(name)
        ]
        if grow:
            for name, future in admin.create_partitions(grow, operation_timeout=timeout).items():
                future.result()
                added[name] = wanted_partitions(name) - len(existing[name].partitions)
    deadline = time.monotonic() + timeout
    while True:  # new topics and partitions reach the metadata a moment after the call returns
        topics = admin.list_topics(timeout=timeout).topics
        if all(
            name in topics
            and topics[name].partitions
            and (name not in added or len(topics[name].partitions) >= wanted_partitions(name))
            for name in wanted
        ):
            break
        if time.monotonic() > deadline:
            missing_now = [name for name in wanted if name not in topics]
            raise KafkaException(f"topics not visible after creation: {missing_now}")
        time.sleep(0.1)
    return [
        TopicState(
            name,
            name in created,
            len(topics[name].partitions),
            wanted_partitions(name),
            added.get(name, 0),
        )
        for name in wanted
    ]


def _replication_message(replication: int, brokers: int) -> str:
    return (
        f"replication factor {replication} is more than the cluster's {brokers} broker(s) can "
        "hold (INVALID_REPLICATION_FACTOR); use --replication or INFERSTREAM_TOPIC_REPLICATION "
        f"<= {brokers}"
    )


def create_topic(
    bootstrap: KafkaTarget,
    name: str,
    partitions: int,
    replication: int,
    config: dict[str, str] | None = None,
    timeout: float = 30,
) -> None:
    """One topic (e.g. a replay's sandbox), created if missing and waited for in the metadata."""
    admin = _Admin(bootstrap)
    brokers = len(cluster_metadata(bootstrap, CONNECT_TIMEOUT_S, admin).brokers)
    if brokers and replication > brokers:
        raise TopicConfigError(_replication_message(replication, brokers))
    topic = NewTopic(name, num_partitions=partitions, replication_factor=replication,
                     config=config or {})  # fmt: skip
    for future in admin.create_topics([topic], operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != _TOPIC_ALREADY_EXISTS:
                raise
    deadline = time.monotonic() + timeout
    while name not in admin.list_topics(timeout=timeout).topics:
        if time.monotonic() > deadline:
            raise KafkaException(f"topic {name} not visible after creation")
        time.sleep(0.1)
