"""What was served for the requests of a range: their provenance, results and dead letters.

Output topics are read from the range's start time to their end offsets at the moment of the
read (a provenance record is written after its request, so nothing older can belong to it),
keeping only the records whose request is in the range: by source offsets for provenance and
dead letters, by request id for results.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from pipeline.codec import AvroDeserializer, DecodeError, SchemaRegistry
from pipeline.core.topics import StreamTopics
from pipeline.kafka.exceptions import RangeError
from pipeline.kafka.ranges import PartitionCoverage, read_ranges, resolve_times

Source = tuple[int, int]  # (partition, offset) of a request


@dataclass
class Served:
    provenance: dict[Source, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # by request id
    dead: dict[Source, str] = field(default_factory=dict)  # dead-letter reason

    def result_for(self, source: Source) -> dict[str, Any] | None:
        record = self.provenance.get(source)
        return None if record is None else self.results.get(record["request_id"])


def in_range(coverage: Collection[PartitionCoverage]) -> dict[int, tuple[int, int]]:
    return {c.partition: (c.start, c.end) for c in coverage}


def read_served(
    bootstrap: str,
    topics: StreamTopics,
    registry: SchemaRegistry,
    coverage: list[PartitionCoverage],
    from_ms: int,
) -> Served:
    spans = in_range(coverage)

    def wanted(partition: int, offset: int) -> bool:
        span = spans.get(partition)
        return span is not None and span[0] <= offset < span[1]

    decode = AvroDeserializer(registry, logical_types=False)  # as the sandbox decodes
    served = Served()
    for record in _records(bootstrap, topics.provenance, decode, from_ms):
        if record["source_topic"] == topics.requests and wanted(
            record["source_partition"], record["source_offset"]
        ):
            served.provenance[(record["source_partition"], record["source_offset"])] = record
    ids = {p["request_id"] for p in served.provenance.values()}
    for record in _records(bootstrap, topics.results, decode, from_ms):
        if record["request_id"] in ids:
            served.results[record["request_id"]] = record
    for message in _messages(bootstrap, topics.dlq, from_ms):
        headers = dict(message.headers)
        try:
            source = (int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))
        except (KeyError, ValueError):
            continue
        if headers.get("dlq.source.topic", b"").decode() == topics.requests and wanted(*source):
            served.dead[source] = headers.get("dlq.reason", b"").decode()
    return served


def _messages(bootstrap: str, topic: str, from_ms: int) -> Any:
    try:  # from the range's start to now: outputs come after their requests
        coverage = resolve_times(bootstrap, topic, from_ms, int(time.time() * 1000) + 1)
    except RangeError:
        return  # nothing served in that time: every request is unmatched
    for batch in read_ranges(bootstrap, topic, coverage):
        yield from batch


def _records(bootstrap: str, topic: str, decode: AvroDeserializer, from_ms: int) -> Any:
    for message in _messages(bootstrap, topic, from_ms):
        try:
            yield decode(message.value)
        except DecodeError:
            continue
