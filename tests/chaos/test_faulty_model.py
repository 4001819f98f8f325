"""Chaos: a slow model and a failing model in a live stream, with a worker subprocess scoring.

The worker serves a real faulty model (tests/chaos/faulty_model.py: the fraud model's graph
with a fault branch) that is slow far beyond the model timeout, or fails in ONNX Runtime, for
a batch holding a trigger request, and scores every other batch as the served model does.
Trigger requests go out mid-stream, one at a time (the next once the stream caught up). Each
trigger's batch must be retried (INFERSTREAM_MODEL_RETRIES), then dead-lettered with its
reason (`model-timeout`, or `model-error` and ONNX Runtime's message in one line in
`dlq.detail`), and the stream must go on: requests sent after the last trigger are scored.
Reported: sent, results, dead letters, lost (must be 0), duplicates, the dead letters'
reasons, and per trigger the time from its send to its dead letter (bounded by timeout x
attempts + backoff). `make test` sends 2 triggers, `make chaos` 10 (CHAOS_FAULTS).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.reader import read_topic
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.chaos import faulty_model
from tests.chaos.conftest import report, worker_env
from tests.integration.helpers import (
    PacedProducer,
    RequestSender,
    TopicTally,
    WorkerProcess,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

FAULTS = int(os.environ.get("CHAOS_FAULTS", "2"))
RATE = 150.0
MODEL_TIMEOUT_S = 0.5
MODEL_RETRIES = 2
EXPECTED_REASON = {"slow": "model-timeout", "failing": "model-error"}
EXPECTED_DETAIL = {
    "slow": f"no answer within {MODEL_TIMEOUT_S:g} s",
    "failing": "indices element out of data bounds",
}


@pytest.mark.parametrize("fault", ["slow", "failing"])
def test_a_faulty_model_dead_letters_its_batches_and_the_stream_goes_on(
    private_stack: Settings, tmp_path: Path, fault: faulty_model.Fault
) -> None:
    namespace = f"chaosm{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(private_stack, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 2, 1, namespace)
    models_dir = tmp_path / "models"
    faulty_model.build(models_dir, fault)
    env = worker_env(settings, tmp_path) | {
        "INFERSTREAM_MODELS_DIR": str(models_dir),
        "INFERSTREAM_MODEL_TIMEOUT_S": str(MODEL_TIMEOUT_S),
        "INFERSTREAM_MODEL_RETRIES": str(MODEL_RETRIES),
    }
    worker = WorkerProcess(env).start(timeout=120)
    results = TopicTally(settings, topics.results).start()
    dead = TopicTally(settings, topics.dlq).start()
    records = TransactionGenerator(seed=94).generate(int(RATE * (30 + 10 * FAULTS))).records
    triggers = [
        faulty_model.trigger(r) for r in TransactionGenerator(seed=93).generate(FAULTS).records
    ]
    stream = PacedProducer(settings, records, RATE).start()
    trigger_ids: list[str] = []
    to_dead_letter: list[float] = []
    try:
        assert wait_for(lambda: results.distinct >= 100, 120), "no results before the faults"
        with RequestSender(settings) as sender:
            for record in triggers:
                sent_at = time.monotonic()
                trigger_ids.append(sender.send(record))
                sender.flush()
                assert wait_for(lambda i=trigger_ids[-1]: i in dead.counts(), 60, interval=0.02)
                to_dead_letter.append(time.monotonic() - sent_at)
                # the backlog of the stall scored before the next trigger: each trigger's
                # batch is then a batch of the steady stream, not of the previous backlog
                backlog = stream.sent
                assert wait_for(lambda b=backlog: results.distinct + dead.distinct >= b, 60)
        sent_after_faults = stream.sent
        stream.end_after(int(RATE * 1))
        ids = stream.join(timeout=300)
        everything = {*ids, *trigger_ids}
        wait_for(lambda: results.distinct + dead.distinct >= len(everything), 120, interval=0.1)
        results.wait_quiet(2.0, 60)
        alive = worker.running
    finally:
        stream.close()
        worker.stop()
        results.close()
        dead.close()
    served = set(results.counts()) | set(dead.counts())
    letters = [
        r.headers
        for r in read_topic(
            settings, topics.dlq, registry_from_settings(settings),
            max_records=dead.total, idle_timeout=10,
        )
    ]  # fmt: skip
    by_id = {h.get("request_id", b"").decode(): h for h in letters}
    reasons = Counter(h.get("dlq.reason", b"").decode() for h in letters)
    after = set(ids[sent_after_faults:])
    figures = {
        "case": f"{fault} model x{FAULTS}",
        "sent": len(everything),
        "results": results.total,
        "dead_letters": dead.total,
        "lost": len(everything - served),
        "duplicates": results.duplicates() + dead.duplicates(),
        "dead_letter_reasons": dict(reasons),
        "to_dead_letter_s_max": round(max(to_dead_letter, default=0.0), 2),
        "scored_after_the_faults": len(after & set(results.counts())),
    }
    report(figures)
    assert alive, "the worker died:\n" + "\n".join(worker.lines)
    assert figures["lost"] == 0, figures
    for request_id in trigger_ids:  # each trigger's batch: retried, then dead-lettered with why
        headers = by_id[request_id]
        assert headers["dlq.stage"] == b"model", headers
        assert headers["dlq.reason"].decode() == EXPECTED_REASON[fault], headers
        detail = headers["dlq.detail"].decode()
        assert EXPECTED_DETAIL[fault] in detail and "\n" not in detail, detail
    assert set(reasons) == {EXPECTED_REASON[fault]}, figures  # no other failure on the way
    assert after and after <= set(results.counts()), figures  # the stream went on
    messages = [line for line in worker.lines if "model 1.0.0-" in line and "attempt" in line]
    assert len(messages) >= FAULTS * (1 + MODEL_RETRIES), "each attempt logged"
