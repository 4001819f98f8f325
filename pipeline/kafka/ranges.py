"""Offset ranges of a topic: resolved from times or given offsets, and read with assign().

No consumer group is joined and nothing is committed: replay never moves anyone's offsets.
End offsets are snapshotted per partition when a range is resolved, so a live topic gives a
finite, reproducible range.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, TopicPartition

from pipeline.core.messages import InboundMessage
from pipeline.kafka.admin import CONNECT_TIMEOUT_S
from pipeline.kafka.client_config import KafkaTarget
from pipeline.kafka.exceptions import RangeError
from pipeline.kafka.messages import inbound_message
from pipeline.kafka.reader import _consumer, _partitions


@dataclass(frozen=True)
class PartitionCoverage:
    """What a partition holds for a range: its offsets, and what is retained there."""

    partition: int
    start: int
    end: int
    low: int  # oldest retained offset when resolved
    high: int  # end offset when resolved (the snapshot)

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


def resolve_times(
    bootstrap: KafkaTarget, topic: str, from_ms: int, to_ms: int
) -> list[PartitionCoverage]:
    """Per partition, the offsets of the records with timestamps in `[from_ms, to_ms)`."""
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, bootstrap, topic, CONNECT_TIMEOUT_S)
        marks = _watermarks(consumer, topic, partitions)
        starts = _offsets_for(consumer, topic, partitions, from_ms)
        ends = _offsets_for(consumer, topic, partitions, to_ms)
        coverage = []
        for p in partitions:
            low, high = marks[p]
            start = high if starts[p] < 0 else max(starts[p], low)
            end = high if ends[p] < 0 else min(ends[p], high)
            coverage.append(PartitionCoverage(p, start, max(start, end), low, high))
        if not any(c.count for c in coverage):
            raise RangeError(
                f"no record of {topic} has a timestamp in [{_iso(from_ms)}, "
                f"{_iso(to_ms)}); retained: {_retained(consumer, topic, marks)}"
            )
        return coverage
    finally:
        consumer.close()


def resolve_offsets(
    bootstrap: KafkaTarget, topic: str, wanted: list[tuple[int, int, int]]
) -> list[PartitionCoverage]:
    """The given (partition, start, end) ranges, checked against what the partitions hold."""
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, bootstrap, topic, CONNECT_TIMEOUT_S)
        missing = [p for p, _, _ in wanted if p not in partitions]
        if missing:
            raise RangeError(
                f"{topic} has no partition {', '.join(map(str, missing))}; "
                f"its partitions: 0-{max(partitions)}"
            )
        marks = _watermarks(consumer, topic, [p for p, _, _ in wanted])
        coverage = []
        for partition, start, end in wanted:
            low, high = marks[partition]
            if start < low:
                raise RangeError(
                    f"{topic} partition {partition}: offset {start} is no longer retained "
                    f"(oldest retained: {low}; newest: {high - 1})"
                )
            if start >= high:
                raise RangeError(
                    f"{topic} partition {partition}: offset {start} is past the end "
                    f"(end offset {high})"
                )
            coverage.append(PartitionCoverage(partition, start, min(end, high), low, high))
        return coverage
    finally:
        consumer.close()


def whole_partitions(
    bootstrap: KafkaTarget, topic: str, only: list[int] | None = None
) -> list[PartitionCoverage]:
    """Everything retained on `topic` (or on the partitions `only`), up to the end snapshot."""
    consumer = _consumer(bootstrap)
    try:
        partitions = _partitions(consumer, bootstrap, topic, CONNECT_TIMEOUT_S)
        chosen = partitions if only is None else [p for p in only if p in partitions]
        marks = _watermarks(consumer, topic, chosen)
        return [PartitionCoverage(p, low, high, low, high) for p, (low, high) in marks.items()]
    finally:
        consumer.close()


def partition_count(bootstrap: KafkaTarget, topic: str) -> int:
    consumer = _consumer(bootstrap)
    try:
        return len(_partitions(consumer, bootstrap, topic, CONNECT_TIMEOUT_S))
    finally:
        consumer.close()


def read_ranges(
    bootstrap: KafkaTarget,
    topic: str,
    coverage: list[PartitionCoverage],
    batch_size: int = 500,
    stall_s: float = 30.0,
) -> Iterator[list[InboundMessage]]:
    """Batches of the records in `coverage`, partitions interleaved, each in offset order."""
    todo = {c.partition: c for c in coverage if c.count}
    if not todo:
        return
    consumer = _consumer(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, c.partition, c.start) for c in todo.values()])
        last_progress = time.monotonic()
        while todo:
            polled = consumer.consume(num_messages=batch_size, timeout=0.5)
            out = []
            for m in polled:
                if m.error() is not None:
                    continue
                c = todo.get(m.partition())
                if c is None or m.offset() >= c.end:
                    continue
                out.append(inbound_message(m))
            if out:
                last_progress = time.monotonic()
                yield out
            _drop_finished(consumer, topic, todo)
            if todo and time.monotonic() - last_progress > stall_s:
                raise RangeError(
                    f"reading {topic} stalled for {stall_s:g} s before the range's end "
                    f"(partitions {', '.join(map(str, sorted(todo)))})"
                )
    finally:
        consumer.close()


def _drop_finished(consumer: Consumer, topic: str, todo: dict[int, PartitionCoverage]) -> None:
    # position, not the last offset seen: compaction and transaction markers leave gaps
    positions = consumer.position([TopicPartition(topic, p) for p in todo])
    for tp in positions:
        if tp.offset >= todo[tp.partition].end:
            del todo[tp.partition]


def _watermarks(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, tuple]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=CONNECT_TIMEOUT_S)
        for p in partitions
    }


def _offsets_for(consumer: Consumer, topic: str, partitions: list[int], ms: int) -> dict:
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, ms) for p in partitions], timeout=CONNECT_TIMEOUT_S
    )
    return {tp.partition: tp.offset for tp in found}


def _retained(consumer: Consumer, topic: str, marks: dict[int, tuple]) -> str:
    """Per partition, the time of its oldest retained record (or 'empty')."""
    parts = []
    for p, (low, high) in sorted(marks.items()):
        if high <= low:
            parts.append(f"partition {p} empty")
            continue
        consumer.assign([TopicPartition(topic, p, low)])
        message = consumer.poll(CONNECT_TIMEOUT_S)
        when = _iso(message.timestamp()[1]) if message is not None and not message.error() else "?"
        parts.append(f"partition {p} from {when} ({high - low} records)")
    return "; ".join(parts)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
