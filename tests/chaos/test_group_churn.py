"""Chaos: workers joining and leaving the consumer group every few seconds, mid-stream.

One worker stays; a second one joins, runs a few seconds and leaves gracefully (SIGTERM:
in-flight batches delivered and committed before its partitions go), again and again, under
cooperative-sticky assignment. Reported: sent, results, dead letters, lost (must be 0),
duplicates, and the longest gap between results while the group changed.
"""

from __future__ import annotations

import dataclasses
import os
import threading
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

ROUNDS = int(os.environ.get("CHAOS_CHURN_ROUNDS", "1"))  # `make chaos`: 10
RATE = 150.0
GAP_TARGET_S = 30.0


def test_workers_joining_and_leaving_lose_nothing(private_stack: Settings, tmp_path: Path) -> None:
    namespace = f"chaosc{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(private_stack, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 4, 1, namespace)
    env = worker_env(settings, tmp_path)
    requests = int(RATE * (40 + 30 * ROUNDS))  # a cap: the stream ends 1 s after the churn
    stay = WorkerProcess(env).start(timeout=120)
    results = TopicTally(settings, topics.results).start()
    dead = TopicTally(settings, topics.dlq).start()
    stream = PacedProducer(
        settings, TransactionGenerator(seed=95).generate(requests).records, RATE
    ).start()
    gaps: list[float] = []
    watching = threading.Event()

    def watch() -> None:  # the longest stretch without a new result while the group churns
        last, seen = time.monotonic(), results.distinct
        while not watching.is_set():
            time.sleep(0.05)
            now, count = time.monotonic(), results.distinct
            if count > seen:
                gaps.append(now - last)
                last, seen = now, count
            elif count >= stream.sent:  # nothing pending: the stream is idle, not stalled
                last = now

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        assert wait_for(lambda: results.distinct >= 100, 120), "no results before the churn"
        watcher.start()
        for _ in range(ROUNDS):
            visitor = WorkerProcess(dict(env)).start(timeout=120)
            time.sleep(3)
            visitor.stop()
            time.sleep(2)
        watching.set()
        stream.end_after(int(RATE * 1))
        ids = stream.join(timeout=600)
        wait_for(lambda: results.distinct + dead.distinct >= len(set(ids)), 300, interval=0.2)
        results.wait_quiet(2.0, 60)
        assert stay.running, "the staying worker died:\n" + "\n".join(stay.lines)
    finally:
        watching.set()
        stream.close()
        stay.stop()
        results.close()
        dead.close()
    lost = len(set(ids) - set(results.counts()) - set(dead.counts()))
    figures = {
        "case": f"a worker joining and leaving x{ROUNDS}",
        "sent": len(ids),
        "results": results.total,
        "dead_letters": dead.total,
        "lost": lost,
        "duplicates": results.duplicates() + dead.duplicates(),
        "longest_gap_s": round(max(gaps, default=0.0), 2),
    }
    report(figures)
    assert lost == 0, figures
    assert figures["longest_gap_s"] <= GAP_TARGET_S, figures  # type: ignore[operator]
