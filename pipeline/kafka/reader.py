"""Reading topics from a start position without joining a consumer group (tail, tests, replay)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from pipeline.codec import AvroDeserializer, DecodeError, SchemaRegistry
from pipeline.kafka.admin import CONNECT_TIMEOUT_S, is_unreachable, tool_client_config, unreachable
from pipeline.kafka.client_config import ConnectionProblems, KafkaTarget, bootstrap_of
from pipeline.kafka.exceptions import TopicNotFound

StartAt = Literal["beginning", "end"]


@dataclass(frozen=True)
class ReadRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: dict[str, bytes]
    raw: bytes | None
    value: dict[str, Any] | None  # None when the bytes did not decode
    error: DecodeError | None


def read_topic(
    bootstrap: KafkaTarget,
    topic: str,
    registry: SchemaRegistry,
    start: StartAt = "beginning",
    max_records: int | None = None,
    idle_timeout: float | None = 10.0,
    on_idle: Callable[[float], None] | None = None,
    idle_notice_s: float = 5.0,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> Iterator[ReadRecord]:
    """Yield records of every partition of `topic`, decoded with their writer schema.

    Stops after `max_records`, or after `idle_timeout` seconds with nothing new (None: never).
    `on_idle(seconds)` is called once per quiet spell that lasts `idle_notice_s`.
    Raises KafkaUnreachable when no broker answers within `connect_timeout`, TopicNotFound
    when the topic does not exist.
    """
    decode = AvroDeserializer(registry)
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, bootstrap, topic, connect_timeout)
        offset = OFFSET_BEGINNING if start == "beginning" else OFFSET_END
        consumer.assign([TopicPartition(topic, p, offset) for p in partitions])
        count, last_seen, noticed = 0, time.monotonic(), False
        while max_records is None or count < max_records:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            if not batch:
                quiet = time.monotonic() - last_seen
                if idle_timeout is not None and quiet > idle_timeout:
                    return
                if on_idle is not None and not noticed and quiet >= idle_notice_s:
                    noticed = True
                    on_idle(quiet)
                continue
            last_seen, noticed = time.monotonic(), False
            for message in batch:
                if message.error() is not None:
                    continue  # partition EOF and transient fetch errors are not records
                yield _record(message, decode)
                count += 1
                if max_records is not None and count >= max_records:
                    return
    finally:
        consumer.close()


def read_last(
    bootstrap: KafkaTarget,
    topic: str,
    registry: SchemaRegistry,
    n: int,
    idle_timeout: float = 10.0,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> list[ReadRecord]:
    """The newest `n` records of `topic` (by timestamp, over all partitions), oldest first."""
    decode = AvroDeserializer(registry)
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, bootstrap, topic, connect_timeout)
        ends: dict[int, int] = {}
        assignment = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=connect_timeout
            )
            if high > low:  # each partition's last n hold the newest n overall
                ends[p] = high
                assignment.append(TopicPartition(topic, p, max(low, high - n)))
        if not assignment:
            return []
        consumer.assign(assignment)
        records: list[ReadRecord] = []
        last_seen = time.monotonic()
        while ends:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            if not batch:
                if time.monotonic() - last_seen > idle_timeout:
                    break  # e.g. transaction markers at the end: nothing more will come
                continue
            last_seen = time.monotonic()
            for message in batch:
                if message.error() is not None:
                    continue
                records.append(_record(message, decode))
                end = ends.get(message.partition())
                if end is not None and message.offset() >= end - 1:
                    del ends[message.partition()]
        records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
        return records[-n:]
    finally:
        consumer.close()


class _Consumer(Consumer):
    """A consumer that keeps its connection problems (auth, TLS) for the error message."""

    problems: ConnectionProblems


def _consumer(bootstrap: KafkaTarget) -> Consumer:
    problems = ConnectionProblems()
    consumer = _Consumer(
        {
            **tool_client_config(bootstrap, problems),
            "group.id": "inferstream-reader",  # required by the client; never committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.problems = problems
    return consumer


def _partitions(
    consumer: Consumer, bootstrap: KafkaTarget, topic: str, timeout: float
) -> list[int]:
    try:
        topics = consumer.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        if is_unreachable(exc):
            raise unreachable(bootstrap_of(bootstrap), timeout, consumer) from None
        raise
    metadata = topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise TopicNotFound(topic, frozenset(topics))
    return sorted(metadata.partitions)


def _record(message: Any, decode: AvroDeserializer) -> ReadRecord:
    raw = message.value()
    try:
        value, error = decode(raw), None
    except DecodeError as exc:
        value, error = None, exc
    return ReadRecord(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        timestamp_ms=message.timestamp()[1],
        key=message.key(),
        headers=dict(message.headers() or ()),
        raw=raw,
        value=value,
        error=error,
    )
