"""The worker's model breaker through the real broker and a worker subprocess: a primary that
fails (a real faulty ONNX model, tests/chaos/faulty_model.py) has its batches served by the
policy's fallback, flagged degraded; after INFERSTREAM_MODEL_BREAKER_FAILURES failed batches
the breaker opens and batches go to the fallback without calling the primary; after the reset
one probe batch closes it again, and nothing is dead-lettered on the way."""

from __future__ import annotations

import json
import time

import pytest

from pipeline.core.registry import stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.stack.worker_process import WorkerProcess
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.chaos import faulty_model
from tests.integration.helpers import log_events, read_all, values

pytestmark = pytest.mark.integration

SMALL, FAILING = "1.0.0-small.1", faulty_model.VERSIONS["failing"]
RESET_S = 6.0


def test_a_failing_model_is_served_by_the_fallback_until_its_breaker_closes_again(
    settings, env, models_dir
):
    faulty_model.build(models_dir, "failing")
    (models_dir / "fraud" / "routing.json").write_text(
        json.dumps({"primary": FAILING, "fallback": SMALL})
    )
    spec = stream_topics("fraud", settings.topic_namespace)
    records = iter(TransactionGenerator(seed=71).generate(200).records)
    seen: dict[str, dict] = {}

    def send_and_read(batch: list[dict]) -> list[dict]:
        with RequestProducer(settings, spec) as producer:
            ids = producer.send_many(batch)
        for record in values(read_all(settings, spec.provenance, expected=len(seen) + len(ids))):
            seen[record["request_id"]] = record
        return [seen[i] for i in ids]

    def normal(n: int) -> list[dict]:
        return [next(records) for _ in range(n)]

    worker = WorkerProcess({
        **env, "INFERSTREAM_MODELS_DIR": str(models_dir), "INFERSTREAM_MODEL_RETRIES": "0",
        "INFERSTREAM_MODEL_BREAKER_FAILURES": "2",
        "INFERSTREAM_MODEL_BREAKER_RESET_S": str(RESET_S),
    }).start()  # fmt: skip
    try:
        closed = send_and_read(normal(20))
        assert {(p["model_version"], p["route"], p["degraded"]) for p in closed} == {
            (FAILING, "primary", False)
        }
        # two batches that make the primary fail: each one served by the fallback
        for _ in range(2):
            failed = send_and_read([faulty_model.trigger(next(records))])
            assert [(p["model_version"], p["route"], p["degraded"]) for p in failed] == [
                (SMALL, "fallback-breaker", True)
            ]
        opened_at = time.monotonic()
        # open: even inputs the primary would score go to the fallback, without a call to it
        while_open = send_and_read(normal(10))
        assert time.monotonic() - opened_at < RESET_S, "too slow to see the open state"
        assert {(p["model_version"], p["route"]) for p in while_open} == {
            (SMALL, "fallback-breaker")
        }
        time.sleep(max(0.0, RESET_S - (time.monotonic() - opened_at)) + 0.5)
        recovered = send_and_read(normal(10))  # the probe batch succeeds: closed again
        assert {(p["model_version"], p["route"], p["degraded"]) for p in recovered} == {
            (FAILING, "primary", False)
        }
        dead = read_all(settings, spec.dlq, idle_timeout=2)
        assert dead == []
    finally:
        worker.stop()
    moves = [e.get("msg", "") for e in log_events(worker.lines)]
    breaker = f"circuit breaker model {FAILING}"
    for move in ("closed -> open", "open -> half-open", "half-open -> closed"):
        assert any(breaker in m and move in m for m in moves), (move, moves[-20:])
