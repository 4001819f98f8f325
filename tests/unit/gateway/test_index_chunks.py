"""The result index works through a catch-up batch in bounded chunks (each written and
settled before the next is decoded), commits once the whole batch is in Redis, and commits
nothing when stopped while Redis refuses; status records keep the decoder's values
(numpy, bytes) as JSON."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from pipeline.gateway import index
from pipeline.gateway.index import INDEX_CHUNK, ResultIndexer, encode_entry


class _Message:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "r"

    def headers(self) -> list[tuple[str, bytes]]:
        return [("request_id", self.request_id.encode())]

    def value(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "score": np.float32(0.5), "raw": b"x"}


class _Consumer:
    def __init__(self, batches: list[list[_Message]], indexer: ResultIndexer) -> None:
        self.batches, self.indexer, self.commits = batches, indexer, 0

    def consume(self, n: int, timeout: float) -> list[_Message]:
        if not self.batches:
            self.indexer._stop.set()
            return []
        return self.batches.pop(0)

    def commit(self, asynchronous: bool) -> None:
        self.commits += 1


class _Store:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.calls: list[list[str]] = []

    def put_many(self, entries: list[tuple[str, dict[str, Any]]]) -> bool:
        self.calls.append([rid for rid, _ in entries])
        encode_entry(entries[0][1]) if entries else None  # what Redis would get: encodable
        return self.up


def _indexer(store: _Store, batches: list[list[_Message]]) -> tuple[ResultIndexer, _Consumer]:
    indexer = ResultIndexer.__new__(ResultIndexer)  # no Kafka: the batching logic only
    indexer.store, indexer.limits, indexer.on_cost, indexer.indexed = store, None, None, 0
    indexer._by_topic = {"r": ("fraud", "results", lambda value: value)}
    indexer._stop = threading.Event()
    consumer = indexer._consumer = _Consumer(batches, indexer)
    return indexer, consumer


def test_a_big_batch_is_indexed_in_chunks_and_committed_once(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(index.time, "sleep", pauses.append)
    n = 2 * INDEX_CHUNK + 7
    store = _Store()
    indexer, consumer = _indexer(store, [[_Message(f"r{i}") for i in range(n)]])
    indexer._run()
    assert [len(c) for c in store.calls] == [INDEX_CHUNK, INDEX_CHUNK, 7]
    assert [rid for call in store.calls for rid in call] == [f"r{i}" for i in range(n)]
    assert len(pauses) == 2  # the GIL handed back between chunks, not after the last
    assert consumer.commits == 1 and indexer.indexed == n


def test_nothing_is_committed_when_stopped_while_redis_is_down(monkeypatch):
    monkeypatch.setattr(index.time, "sleep", lambda s: None)
    store = _Store(up=False)
    indexer, consumer = _indexer(store, [[_Message("r1")]])
    indexer._stop.wait = lambda timeout: True  # stopped during the first retry wait
    indexer._run()
    assert store.calls == [["r1"]] and consumer.commits == 0 and indexer.indexed == 0


def test_status_records_encode_numpy_and_bytes():
    entry = {
        "status": "done",
        "result": {"score": np.float32(0.25), "row": np.array([1.0, 2.0]), "raw": b"ok", 3: 1},
    }
    assert json.loads(encode_entry(entry)) == {
        "status": "done",
        "result": {"score": 0.25, "row": [1.0, 2.0], "raw": "ok", "3": 1},
    }
