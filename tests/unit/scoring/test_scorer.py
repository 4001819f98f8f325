"""BatchScorer through the scoring handler's stages: dead letters, one model call, provenance."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.codec import AvroDeserializer, AvroSerializer, SchemaCatalog
from pipeline.codec.registry import LocalRegistry
from pipeline.config import REPO_ROOT
from pipeline.core.batch import Batch
from pipeline.core.canonical import float32_rows
from pipeline.core.registry import get_plugin, stream_topics
from pipeline.models.manifest import ModelInput
from pipeline.scoring import BatchScorer, InboundMessage
from pipeline.scoring.handler import ScoringHandler
from pipeline.scoring.provenance import data_hashes
from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator

REGISTRY = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
PLUGIN = get_plugin("fraud")
SPEC = stream_topics("fraud")
ENCODE = AvroSerializer(REGISTRY, REGISTRY.catalog.latest("fraud_request"), SPEC.requests)
DECODE = AvroDeserializer(REGISTRY)


class FakeModel:
    """Scores = first feature / 100; counts calls; can fail a number of times or hang."""

    def __init__(self, failures: int = 0, hang_s: float = 0.0) -> None:
        self.manifest = SimpleNamespace(name="fraud", version="9.9.9", input=ModelInput(),
                                        preprocessing_version="fraud-features/1",
                                        output={"positive_column": 1},
                                        thresholds={"review": 0.05, "decline": 0.05})
        self.sha256 = "ab" * 32
        self.provider = "CPUExecutionProvider"
        self.calls: list[int] = []
        self.failures = failures
        self.hang_s = hang_s

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        self.calls.append(len(matrix))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("onnx exploded")
        if self.hang_s:
            import time

            time.sleep(self.hang_s)
        scores = matrix[:, 0].astype(float) / 100
        return np.column_stack([1 - scores, scores])  # two class probabilities, like the model


def messages(records, start_offset=0):
    return [
        InboundMessage(SPEC.requests, 0, start_offset + i, 1_795_400_000_000,
                       r["card_id"].encode(), ENCODE(r), [("request_id", r["request_id"].encode())])
        for i, r in enumerate(records)
    ]


class Delivered(list):
    """The handler's deliver callable: records what it was given."""

    def __call__(self, outbound):
        self.extend(outbound)


def score(scorer, batch, timeout_s=5.0, retries=0, cut="idle"):
    delivered = Delivered()
    handler = ScoringHandler(scorer, delivered, timeout_s, retries, retry_backoff_s=0)
    scored = handler.handle(Batch(1, batch, cut, 1.5, 0.0, {}))
    assert delivered == scored.outbound, "handle() returns once all outputs were delivered"
    return scored


def outputs(scored, topic):
    return [m for m in scored.outbound if m.topic == topic]


def test_a_batch_is_one_model_call_with_a_result_and_provenance_per_request():
    records = TransactionGenerator(seed=1).generate(50).records
    model = FakeModel()
    scorer = BatchScorer(PLUGIN, SPEC, model, REGISTRY, worker_id="w")
    scored = score(scorer, messages(records), cut="deadline")
    assert model.calls == [50]
    results = [DECODE(m.value) for m in outputs(scored, SPEC.results)]
    provenance = [DECODE(m.value) for m in outputs(scored, SPEC.provenance)]
    assert [r["request_id"] for r in results] == [r["request_id"] for r in records]
    matrix = build_features(records).matrix
    assert [p["data_hash"] for p in provenance] == data_hashes(float32_rows(matrix))
    assert results[0]["score"] == pytest.approx(matrix[0, 0] / 100)
    assert {p["batch_size"] for p in provenance} == {50}
    assert {(p["batch_cut"], p["batch_wait_ms"]) for p in provenance} == {("deadline", 1.5)}
    assert provenance[3]["source_offset"] == 3
    assert outputs(scored, SPEC.results)[0].key == records[0]["card_id"].encode()
    assert outputs(scored, SPEC.provenance)[0].key == records[0]["request_id"].encode()


def test_bad_messages_are_dead_lettered_and_the_rest_scored():
    records = TransactionGenerator(seed=2).generate(5).records
    records[1]["amount"] = float("inf")
    batch = messages(records)
    batch[3].value = b"garbage"
    batch[4].key = None
    scorer = BatchScorer(PLUGIN, SPEC, FakeModel(), REGISTRY, worker_id="w")
    scored = score(scorer, batch)
    dead = {int(dict(m.headers)["dlq.source.offset"]): dict(m.headers)
            for m in outputs(scored, SPEC.dlq)}
    assert dead[1]["dlq.reason"] == b"invalid-feature"
    assert dead[3]["dlq.reason"] == b"bad-magic"
    assert dead[4]["dlq.reason"] == b"missing-key"
    assert dead[1]["request_id"] == records[1]["request_id"].encode(), "original headers kept"
    assert [m.value for m in outputs(scored, SPEC.dlq) if dict(m.headers)["dlq.source.offset"]
            == b"3"] == [b"garbage"]
    assert len(outputs(scored, SPEC.results)) == 2


def test_model_failures_are_retried_then_the_batch_is_dead_lettered():
    records = TransactionGenerator(seed=3).generate(4).records
    flaky = FakeModel(failures=1)
    scorer = BatchScorer(PLUGIN, SPEC, flaky, REGISTRY, worker_id="w")
    scored = score(scorer, messages(records), retries=2)
    assert len(outputs(scored, SPEC.results)) == 4 and len(flaky.calls) == 2

    broken = FakeModel(failures=10)
    scorer = BatchScorer(PLUGIN, SPEC, broken, REGISTRY, worker_id="w")
    scored = score(scorer, messages(records), retries=2)
    assert len(broken.calls) == 3
    assert outputs(scored, SPEC.results) == []
    reasons = {dict(m.headers)["dlq.reason"] for m in outputs(scored, SPEC.dlq)}
    assert reasons == {b"model-error"} and len(outputs(scored, SPEC.dlq)) == 4


def test_a_hung_model_times_out_into_the_dlq():
    records = TransactionGenerator(seed=4).generate(2).records
    scorer = BatchScorer(PLUGIN, SPEC, FakeModel(hang_s=0.5), REGISTRY, worker_id="w")
    scored = score(scorer, messages(records), timeout_s=0.05)
    assert {dict(m.headers)["dlq.reason"] for m in outputs(scored, SPEC.dlq)} == {
        b"model-timeout"}


class DictCache:
    def __init__(self, down=False):
        self.store: dict[str, np.ndarray] = {}
        self.down = down

    def get_many(self, keys):
        return None if self.down else [self.store.get(k) for k in keys]

    def put_many(self, keys, rows):
        self.store.update(zip(keys, np.array(rows), strict=True))
        return True


def test_cached_scores_skip_the_model_and_redis_down_flags_degraded():
    records = TransactionGenerator(seed=5).generate(8).records
    model, cache = FakeModel(), DictCache()
    scorer = BatchScorer(PLUGIN, SPEC, model, REGISTRY, cache=cache, worker_id="w")
    first = score(scorer, messages(records))
    second = score(scorer, messages(records, start_offset=8))
    assert model.calls == [8]  # the second batch came wholly from the cache
    prov = [DECODE(m.value) for m in outputs(second, SPEC.provenance)]
    assert all(p["cache_hit"] for p in prov)
    assert [DECODE(m.value)["score"] for m in outputs(first, SPEC.results)] == [
        DECODE(m.value)["score"] for m in outputs(second, SPEC.results)]

    cache.down = True
    third = score(scorer, messages(records, start_offset=16))
    assert model.calls == [8, 8]
    assert all(DECODE(m.value)["degraded"] for m in outputs(third, SPEC.results))


class DictIds:
    """The request-id rule in memory: id -> payload it was first seen with."""

    def __init__(self, down: bool = False) -> None:
        self.held: dict[str, bytes | None] = {}
        self.down = down

    def conflicts(self, ids, payloads):
        if self.down:
            return None
        out = []
        for request_id, payload in zip(ids, payloads, strict=True):
            out.append(self.held.setdefault(request_id, payload) != payload)
        return out


def test_a_reused_request_id_with_another_payload_is_dead_lettered():
    records = TransactionGenerator(seed=6).generate(3).records
    records[2]["request_id"] = records[0]["request_id"]  # a different request, same id
    ids = DictIds()
    scorer = BatchScorer(PLUGIN, SPEC, FakeModel(), REGISTRY, worker_id="w",
                         request_ids=ids)
    scored = score(scorer, messages(records))
    assert [DECODE(m.value)["request_id"] for m in outputs(scored, SPEC.results)] == [
        records[0]["request_id"], records[1]["request_id"]]
    dead = outputs(scored, SPEC.dlq)
    assert [dict(m.headers)["dlq.reason"] for m in dead] == [b"duplicate-request-id"]
    assert dict(dead[0].headers)["dlq.source.offset"] == b"2"
    # the same payloads again are replays: scored, nothing dead-lettered
    again = score(scorer, messages(records[:2], start_offset=3))
    assert len(outputs(again, SPEC.results)) == 2 and outputs(again, SPEC.dlq) == []
    ids.down = True
    degraded = score(scorer, messages(records, start_offset=5))
    assert all(DECODE(m.value)["degraded"] for m in outputs(degraded, SPEC.results))
    assert len(outputs(degraded, SPEC.results)) == 3
