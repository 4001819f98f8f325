"""Chaos: the Kafka broker stopped and restarted mid-stream, with a worker subprocess scoring.

A private stack (its own Kafka and Redis, on free ports, in this test's state directory:
the shared broker other tests use is never stopped) carries a live stream (PacedProducer);
the broker gets SIGTERM mid-stream and is started again from the same data directory. The
case reports requests sent, results, dead letters, lost (must be 0), duplicates and the time
to recover: from the broker answering again to the first new result, and to the backlog
scored. `make chaos` runs it with more requests (CHAOS_REQUESTS, default 900 here).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path

import pytest

from pipeline import stack as local_stack
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.chaos.conftest import report, worker_env
from tests.integration.helpers import PacedProducer, TopicTally, WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REQUESTS = int(os.environ.get("CHAOS_REQUESTS", "900"))  # `make chaos`: 6,000
RATE = 150.0  # requests/s: the stream lasts REQUESTS / RATE seconds
RECOVERY_TARGET_S = 30.0


def test_broker_restart_mid_stream_loses_nothing(private_stack: Settings, tmp_path: Path) -> None:
    namespace = f"chaos{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(private_stack, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 4, 1, namespace)
    env = worker_env(settings, tmp_path)
    worker = WorkerProcess(env).start(timeout=120)
    results = TopicTally(settings, topics.results).start()
    dead = TopicTally(settings, topics.dlq).start()
    records = TransactionGenerator(seed=99).generate(REQUESTS).records
    # a third of the stream is held back until the broker is back: it is still going then
    stream = PacedProducer(settings, records, RATE, reserve=REQUESTS // 3).start()
    try:
        assert wait_for(lambda: results.distinct >= REQUESTS // 6, 120), "no results before"
        sent_before = stream.sent
        stopped_at = time.monotonic()
        local_stack.down(settings, lambda _: None, services=["kafka"])
        # down until the start below answers (seconds): the producer buffers, the worker's
        # clients retry
        local_stack.ensure_up(settings, lambda _: None, services=["kafka"])
        back_at = time.monotonic()
        seen_at_back = results.distinct
        sent_at_back = stream.sent
        wait_for(lambda: results.distinct > seen_at_back, 120, interval=0.05)
        first_result_s = time.monotonic() - back_at
        wait_for(lambda: results.distinct >= sent_at_back, 180, interval=0.1)
        caught_up_s = time.monotonic() - back_at
        ids = stream.join(timeout=300)
        wait_for(lambda: results.distinct + dead.distinct >= len(ids), 300, interval=0.2)
        results.wait_quiet(2.0, 60)
        assert worker.running, "the worker died:\n" + "\n".join(worker.lines)
    finally:
        stream.close()
        worker.stop()
        results.close()
        dead.close()
    served = set(results.counts()) | set(dead.counts())
    lost = len(set(ids) - served)
    figures = {
        "case": "broker restart mid-stream",
        "sent": len(ids),
        "results": results.total,
        "dead_letters": dead.total,
        "lost": lost,
        "duplicates": results.duplicates() + dead.duplicates(),
        "broker_down_s": round(back_at - stopped_at, 1),
        "sent_before_stop": sent_before,
        "first_result_after_back_s": round(first_result_s, 2),
        "backlog_scored_after_back_s": round(caught_up_s, 2),
    }
    report(figures)
    assert lost == 0, figures
    assert caught_up_s <= RECOVERY_TARGET_S, figures
