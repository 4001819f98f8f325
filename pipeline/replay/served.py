"""What was served for the requests of a range: their provenance, results and dead letters.

Output topics are read from the range's start time to their end offsets at the moment of the
read (a provenance record is written after its request, so nothing older can belong to it),
keeping only the records whose request is in the range: by source offsets for provenance and
dead letters, by request id for results.

They go into an on-disk index (SQLite in a temporary file), not a dict: the replay then streams
its requests batch by batch and looks each batch up, so memory does not grow with the range.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from pipeline.codec import AvroDeserializer, DecodeError, SchemaRegistry
from pipeline.core.topics import StreamTopics
from pipeline.kafka.exceptions import RangeError
from pipeline.kafka.ranges import PartitionCoverage, read_ranges, resolve_times

Source = tuple[int, int]  # (partition, offset) of a request
_CHUNK = 2000  # rows per insert / per lookup query

_SCHEMA = """
CREATE TABLE provenance (partition INTEGER, offset INTEGER, request_id TEXT, record BLOB,
                         PRIMARY KEY (partition, offset));
CREATE TABLE results (request_id TEXT PRIMARY KEY, record BLOB);
CREATE TABLE dead (partition INTEGER, offset INTEGER, reason TEXT,
                   PRIMARY KEY (partition, offset));
"""


@dataclass
class ServedBatch:
    """The served records of one batch of requests."""

    provenance: dict[Source, dict[str, Any]]
    results: dict[str, dict[str, Any]]  # by request id
    dead: dict[Source, str]  # dead-letter reason

    def result_for(self, source: Source) -> dict[str, Any] | None:
        record = self.provenance.get(source)
        return None if record is None else self.results.get(record["request_id"])


class ServedIndex:
    """The served outputs of a range, on disk; `lookup` gives a batch's."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix="inferstream-replay-", dir=directory)
        self._db = sqlite3.connect(Path(self._dir.name) / "served.sqlite")
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)

    def _insert(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        rows = iter(rows)
        while chunk := list(islice(rows, _CHUNK)):
            marks = ",".join("?" * len(chunk[0]))
            self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", chunk)

    def lookup(self, sources: Sequence[Source]) -> ServedBatch:
        provenance: dict[Source, dict[str, Any]] = {}
        dead: dict[Source, str] = {}
        by_partition: dict[int, list[int]] = {}
        for partition, offset in sources:
            by_partition.setdefault(partition, []).append(offset)
        # one partition at a time: `partition = ? AND offset IN (...)` walks the primary key
        for partition, offsets in by_partition.items():
            for i in range(0, len(offsets), _CHUNK):
                chunk = offsets[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                where = f"partition = ? AND offset IN ({marks})"
                for offset, blob in self._db.execute(
                    f"SELECT offset, record FROM provenance WHERE {where}", (partition, *chunk)
                ):
                    provenance[(partition, offset)] = orjson.loads(blob)
                for offset, reason in self._db.execute(
                    f"SELECT offset, reason FROM dead WHERE {where}", (partition, *chunk)
                ):
                    dead[(partition, offset)] = reason
        ids = [p["request_id"] for p in provenance.values()]
        results: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for request_id, blob in self._db.execute(
                f"SELECT request_id, record FROM results WHERE request_id IN ({marks})", chunk
            ):
                results[request_id] = orjson.loads(blob)
        return ServedBatch(provenance, results, dead)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def in_range(coverage: Collection[PartitionCoverage]) -> dict[int, tuple[int, int]]:
    return {c.partition: (c.start, c.end) for c in coverage}


def read_served(
    bootstrap: str,
    topics: StreamTopics,
    registry: SchemaRegistry,
    coverage: list[PartitionCoverage],
    from_ms: int,
    directory: Path | None = None,
) -> ServedIndex:
    spans = in_range(coverage)

    def wanted(partition: int, offset: int) -> bool:
        span = spans.get(partition)
        return span is not None and span[0] <= offset < span[1]

    decode = AvroDeserializer(registry, logical_types=False)  # as the sandbox decodes
    index = ServedIndex(directory)
    index._insert(
        "provenance",
        (
            (r["source_partition"], r["source_offset"], r["request_id"], orjson.dumps(r))
            for r in _records(bootstrap, topics.provenance, decode, from_ms)
            if r["source_topic"] == topics.requests
            and wanted(r["source_partition"], r["source_offset"])
        ),
    )
    # results of other requests are dropped at lookup, by the provenance join
    index._insert(
        "results",
        (
            (r["request_id"], orjson.dumps(r))
            for r in _records(bootstrap, topics.results, decode, from_ms)
        ),
    )
    index._insert("dead", _dead_letters(bootstrap, topics, from_ms, wanted))
    return index


def _dead_letters(bootstrap: str, topics: StreamTopics, from_ms: int, wanted: Any) -> Iterator:
    for message in _messages(bootstrap, topics.dlq, from_ms):
        headers = dict(message.headers)
        try:
            source = (int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))
        except (KeyError, ValueError):
            continue
        if headers.get("dlq.source.topic", b"").decode() == topics.requests and wanted(*source):
            yield (*source, headers.get("dlq.reason", b"").decode())


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
