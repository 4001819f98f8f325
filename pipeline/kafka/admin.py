"""Topic creation for the stream families."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.streams import drift_alerts_topic, stream_spec

# Provenance is keyed by request id and is what replay reads: keep it longer than the rest.
_TOPIC_CONFIG = {
    "provenance": {"retention.ms": str(30 * 24 * 3600 * 1000)},
    "dlq": {"retention.ms": str(30 * 24 * 3600 * 1000)},
}


@dataclass(frozen=True)
class TopicState:
    name: str
    created: bool
    partitions: int


def topic_names(streams: Iterable[str], namespace: str = "") -> list[str]:
    names = [topic for stream in streams for topic in stream_spec(stream, namespace).topics]
    return [*names, drift_alerts_topic(namespace)]


def ensure_topics(
    bootstrap: str,
    streams: Iterable[str],
    partitions: int,
    replication: int,
    namespace: str = "",
    timeout: float = 30,
) -> list[TopicState]:
    """Create missing topics of the given stream families; existing ones are left as they are."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = topic_names(streams, namespace)
    alerts = drift_alerts_topic(namespace)
    missing = [
        NewTopic(
            name,
            num_partitions=1 if name == alerts else partitions,
            replication_factor=replication,
            config=_TOPIC_CONFIG.get(name.rsplit(".", 1)[-1], {}),
        )
        for name in wanted
        if name not in existing
    ]
    created = set()
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                future.result()
                created.add(name)
            except KafkaException as exc:
                if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another process won the race
                    raise
    deadline = time.monotonic() + timeout
    while True:  # new topics reach the metadata a moment after CreateTopics returns
        topics = admin.list_topics(timeout=timeout).topics
        if all(name in topics and topics[name].partitions for name in wanted):
            break
        if time.monotonic() > deadline:
            missing_now = [name for name in wanted if name not in topics]
            raise KafkaException(f"topics not visible after creation: {missing_now}")
        time.sleep(0.1)
    return [TopicState(name, name in created, len(topics[name].partitions)) for name in wanted]
