"""Chaos: kill -9 of the worker at random moments of a live stream, a new worker started each
time (as a supervisor or an orchestrator would).

The killed worker's outputs in flight may be produced again by its successor (at-least-once:
duplicates are counted, not failures); nothing may be lost. The successor gets the
partitions when the dead member's session expires (INFERSTREAM_CONSUMER_SESSION_TIMEOUT_MS,
6 s here). Reported: sent, results, dead letters, lost (must be 0), duplicates, and per kill
the time from the kill to the next new result. `make test` kills once, `make chaos` 10 times
(CHAOS_KILLS). The stream runs until 1 s after the last kill.
"""

from __future__ import annotations

import dataclasses
import os
import random
import statistics
import time
import uuid
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.chaos.conftest import report, worker_env
from tests.integration.helpers import PacedProducer, TopicTally, WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

KILLS = int(os.environ.get("CHAOS_KILLS", "1"))  # `make chaos`: 10
RATE = 150.0
SESSION_TIMEOUT_MS = 6000
RECOVERY_TARGET_S = 60.0  # session expiry + a new process's start (model load, group join)


def test_worker_killed_at_random_moments_loses_nothing(
    private_stack: Settings, tmp_path: Path
) -> None:
    namespace = f"chaosk{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(private_stack, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 4, 1, namespace)
    env = worker_env(settings, tmp_path)
    env["INFERSTREAM_CONSUMER_SESSION_TIMEOUT_MS"] = str(SESSION_TIMEOUT_MS)
    requests = int(RATE * (40 + 30 * KILLS))  # a cap: the stream ends 1 s after the last kill
    rng = random.Random(16)
    worker = WorkerProcess(env).start(timeout=120)
    results = TopicTally(settings, topics.results).start()
    dead = TopicTally(settings, topics.dlq).start()
    records = TransactionGenerator(seed=97).generate(requests).records
    stream = PacedProducer(settings, records, RATE).start()
    recoveries: list[float] = []
    try:
        assert wait_for(lambda: results.distinct >= 100, 120), "no results before the kills"
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 4.0))  # a random moment: mid-batch, mid-commit, idle
            seen = results.distinct
            killed_at = time.monotonic()
            worker.kill9()
            worker = WorkerProcess(env).start(timeout=120)
            assert wait_for(lambda s=seen: results.distinct > s, 120, interval=0.05)
            recoveries.append(time.monotonic() - killed_at)
        stream.end_after(int(RATE * 1))
        ids = stream.join(timeout=600)
        wait_for(lambda: results.distinct + dead.distinct >= len(set(ids)), 300, interval=0.2)
        results.wait_quiet(2.0, 60)
        assert worker.running, "the last worker died:\n" + "\n".join(worker.lines)
    finally:
        stream.close()
        worker.stop()
        results.close()
        dead.close()
    lost = len(set(ids) - set(results.counts()) - set(dead.counts()))
    figures = {
        "case": f"kill -9 of the worker x{KILLS}",
        "sent": len(ids),
        "results": results.total,
        "dead_letters": dead.total,
        "lost": lost,
        "duplicates": results.duplicates() + dead.duplicates(),
        "recovery_s_median": round(statistics.median(recoveries), 1),
        "recovery_s_max": round(max(recoveries), 1),
    }
    report(figures)
    assert lost == 0, figures
    assert max(recoveries) <= RECOVERY_TARGET_S, figures
