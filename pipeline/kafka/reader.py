"""Reading topics from a start position without joining a consumer group (tail, tests, replay)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from pipeline.codec import AvroDeserializer, DecodeError, SchemaRegistry

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
    bootstrap: str,
    topic: str,
    registry: SchemaRegistry,
    start: StartAt = "beginning",
    max_records: int | None = None,
    idle_timeout: float | None = 10.0,
) -> Iterator[ReadRecord]:
    """Yield records of every partition of `topic`, decoded with their writer schema.

    Stops after `max_records`, or after `idle_timeout` seconds with nothing new (None: never).
    """
    decode = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "inferstream-reader",  # required by the client; never committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise LookupError(f"topic {topic!r} does not exist")
        offset = OFFSET_BEGINNING if start == "beginning" else OFFSET_END
        consumer.assign([TopicPartition(topic, p, offset) for p in metadata.partitions])
        count, last_seen = 0, time.monotonic()
        while max_records is None or count < max_records:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            if not batch:
                if idle_timeout is not None and time.monotonic() - last_seen > idle_timeout:
                    return
                continue
            last_seen = time.monotonic()
            for message in batch:
                if message.error() is not None:
                    continue  # partition EOF and transient fetch errors are not records
                raw = message.value()
                try:
                    value, error = decode(raw), None
                except DecodeError as exc:
                    value, error = None, exc
                yield ReadRecord(
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
                count += 1
                if max_records is not None and count >= max_records:
                    return
    finally:
        consumer.close()
