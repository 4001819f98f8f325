"""The requests behind a list of request ids, found as `explain` finds one.

Provenance is keyed by request id, so each id's provenance sits on the partition murmur2 picks;
each such partition is scanned once for all its ids. Ids without provenance are looked for on
the dead-letter topic (by header). The requests are then read at their source offsets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from pipeline.codec import AvroDeserializer
from pipeline.core.messages import InboundMessage
from pipeline.core.topics import StreamTopics
from pipeline.kafka.partitioner import partition_for
from pipeline.kafka.ranges import (
    PartitionCoverage,
    partition_count,
    read_ranges,
    whole_partitions,
)
from pipeline.replay.exceptions import ReplayError

Source = tuple[int, int]


@dataclass
class Found:
    coverage: list[PartitionCoverage]
    messages: list[InboundMessage]
    missing: list[str]  # ids in neither the provenance nor the dead-letter topic


def find_requests(
    bootstrap: str, topics: StreamTopics, ids: Collection[str], decode: AvroDeserializer
) -> Found:
    wanted = {i.encode(): i for i in ids}
    sources: dict[str, Source] = {}
    n = partition_count(bootstrap, topics.provenance)
    homes = sorted({partition_for(key, n) for key in wanted})
    for batch in read_ranges(bootstrap, topics.provenance, whole_partitions(
        bootstrap, topics.provenance, homes
    )):  # fmt: skip
        for message in batch:
            if message.key in wanted:
                record = decode(message.value)
                if record["source_topic"] == topics.requests:
                    sources[wanted[message.key]] = (
                        record["source_partition"], record["source_offset"]
                    )  # fmt: skip
    left = {k: v for k, v in wanted.items() if v not in sources}
    if left:
        for batch in read_ranges(bootstrap, topics.dlq, whole_partitions(bootstrap, topics.dlq)):
            for message in batch:
                rid = message.header("request_id")
                if rid in left:
                    headers = dict(message.headers)
                    sources[left[rid]] = (
                        int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"])
                    )  # fmt: skip
    missing = sorted(set(ids) - set(sources))
    if not sources:
        raise ReplayError(
            f"none of the {len(ids):,} request ids is in {topics.provenance} or {topics.dlq} "
            f"(first: {', '.join(missing[:3])})"
        )
    by_partition: dict[int, set[int]] = defaultdict(set)
    for partition, offset in sources.values():
        by_partition[partition].add(offset)
    coverage = [
        PartitionCoverage(p, min(offs), max(offs) + 1, min(offs), max(offs) + 1)
        for p, offs in sorted(by_partition.items())
    ]
    messages = [
        m
        for batch in read_ranges(bootstrap, topics.requests, coverage)
        for m in batch
        if m.offset in by_partition[m.partition]
    ]
    return Found(coverage, messages, missing)
