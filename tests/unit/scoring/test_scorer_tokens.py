"""BatchScorer on a token stream (docs, its real model): budgets, chunks, cache, job admission."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.assembly import load_stream_model
from pipeline.codec import AvroDeserializer, AvroSerializer, SchemaCatalog
from pipeline.codec.registry import LocalRegistry
from pipeline.config import REPO_ROOT, Settings
from pipeline.core.batch import Batch
from pipeline.core.registry import get_plugin
from pipeline.scoring import BatchScorer, InboundMessage
from pipeline.scoring.handler import ScoringHandler

REGISTRY = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
PLUGIN = get_plugin("docs")
TOPICS = PLUGIN.topics()
ENCODE = AvroSerializer(REGISTRY, REGISTRY.catalog.latest("docs_request"), TOPICS.requests)
DECODE = AvroDeserializer(REGISTRY)
LONG = " ".join(f"paragraph {i} of a long manual page about options" for i in range(120))


@pytest.fixture(scope="module")
def model():
    return load_stream_model(Settings(), PLUGIN)  # models/docs/1.0.0, built by `make models`


class Cache:
    def __init__(self) -> None:
        self.rows: dict[str, np.ndarray] = {}

    def get_many(self, keys):
        return [self.rows.get(k) for k in keys]

    def put_many(self, keys, rows):
        self.rows.update(zip(keys, np.asarray(rows), strict=True))
        return True


class Jobs:
    def __init__(self, refused: dict[str, str] | None) -> None:
        self.refused = refused

    def refusals(self, jobs):
        return None if self.refused is None else [self.refused.get(j) for j in jobs]


def messages(texts: list[str], job: str = "j") -> list[InboundMessage]:
    out = []
    for i, text in enumerate(texts):
        record = {"request_id": f"{job}/d{i}", "job_id": job, "document_id": f"d{i}",
                  "text": text, "long_policy": None, "tenant": None, "metadata": None}
        out.append(InboundMessage(TOPICS.requests, 0, i, 1_795_400_000_000, f"d{i}".encode(),
                                  ENCODE(record), [("request_id", record["request_id"].encode())]))
    return out


def run(scorer: BatchScorer, batch: list[InboundMessage], timeout_s: float = 30.0):
    delivered: list = []
    handler = ScoringHandler(scorer, delivered.extend, timeout_s, 0, retry_backoff_s=0)
    scored = handler.handle(Batch(1, batch, "full", 0.0, 0.0, {}))
    results = [DECODE(m.value) for m in scored.outbound if m.topic == TOPICS.results]
    dead = [m for m in scored.outbound if m.topic == TOPICS.dlq]
    return results, dead


def test_chunks_of_a_long_text_are_pooled_into_one_unit_embedding(model):
    scorer = BatchScorer(PLUGIN, TOPICS, model, REGISTRY, max_batch_tokens=512)
    results, dead = run(scorer, messages(["a short gloss", LONG, "another short one"]))
    assert not dead and [r["document_id"] for r in results] == ["d0", "d1", "d2"]
    long = results[1]
    assert long["chunks"] > 1 and not long["truncated"]
    embedding = np.asarray(long["embedding"])
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)
    # the same as running each window alone and averaging by tokens
    inputs = scorer.preprocess([{"document_id": "x", "text": LONG}])
    rows = [model.predict(inputs.matrix[r : r + 1, : inputs.lengths[r]])[0]
            for r in range(len(inputs.matrix))]
    pooled = np.average(rows, axis=0, weights=inputs.lengths)
    assert np.abs(embedding - pooled / np.linalg.norm(pooled)).max() < 1e-4


def test_the_cache_serves_repeats_and_the_model_runs_only_on_the_rest(model):
    cache = Cache()
    scorer = BatchScorer(PLUGIN, TOPICS, model, REGISTRY, cache=cache)
    first, _ = run(scorer, messages(["cats purr", LONG]))
    calls = []
    original = model.predict

    class Counting:
        def __getattr__(self, name):
            return getattr(model, name)

        def predict(self, matrix):
            calls.append(matrix.shape[0])
            return original(matrix)

    again = BatchScorer(PLUGIN, TOPICS, Counting(), REGISTRY, cache=cache)
    second, _ = run(again, messages(["cats purr", "dogs bark", LONG]))
    assert calls == [1]  # only "dogs bark" reached the model
    assert second[0]["embedding"] == first[0]["embedding"]
    assert second[2]["embedding"] == first[1]["embedding"] and second[2]["chunks"] > 1


def test_documents_of_cancelled_or_over_budget_jobs_are_dead_lettered_with_why(model):
    refused = {"stop": "job-cancelled", "poor": "budget-exceeded"}
    scorer = BatchScorer(PLUGIN, TOPICS, model, REGISTRY, admission=Jobs(refused))
    batch = messages(["one"], "stop") + messages(["two"], "poor") + messages(["three"], "go")
    results, dead = run(scorer, batch)
    assert [r["job_id"] for r in results] == ["go"]
    reasons = {dict(d.headers)["request_id"]: dict(d.headers)["dlq.reason"] for d in dead}
    assert reasons == {b"stop/d0": b"job-cancelled", b"poor/d0": b"budget-exceeded"}
    assert all(dict(d.headers)["dlq.stage"] == b"admit" for d in dead)


def test_without_the_job_store_documents_are_scored_and_flagged_degraded(model):
    scorer = BatchScorer(PLUGIN, TOPICS, model, REGISTRY, admission=Jobs(None))
    results, dead = run(scorer, messages(["one", "two"]))
    assert not dead and all(r["degraded"] for r in results)
