"""Chaos: Redis stopped and restarted mid-stream, with a worker subprocess scoring.

While Redis is down the worker keeps scoring and flags its results `degraded`; none is lost;
once Redis is back (empty: the stack's Redis keeps no data) results stop being degraded within
the client's retry interval (INFERSTREAM_REDIS_RETRY_AFTER_S, 2 s) plus a batch. Reported:
sent, results, dead letters, lost (must be 0), duplicates, degraded results, and the time from
Redis answering again to the first result served with it.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path

import pytest

from pipeline import stack as local_stack
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.reader import read_topic
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.chaos.conftest import report, worker_env
from tests.integration.helpers import PacedProducer, TopicTally, WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REQUESTS = int(os.environ.get("CHAOS_REQUESTS", "900"))  # `make chaos`: 6,000
RATE = 150.0
RECOVERY_TARGET_S = 10.0


def test_redis_restart_mid_stream_degrades_and_recovers(
    private_stack: Settings, tmp_path: Path
) -> None:
    namespace = f"chaosr{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(private_stack, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 4, 1, namespace)
    worker = WorkerProcess(worker_env(settings, tmp_path)).start(timeout=120)
    results = TopicTally(settings, topics.results).start()
    dead = TopicTally(settings, topics.dlq).start()
    records = TransactionGenerator(seed=98).generate(REQUESTS).records
    stream = PacedProducer(settings, records, RATE, reserve=REQUESTS // 3).start()
    try:
        assert wait_for(lambda: results.distinct >= REQUESTS // 6, 120), "no results before"
        local_stack.down(settings, lambda _: None, services=["redis"])
        down_at = time.time()
        time.sleep(4)  # scored meanwhile, without Redis
        local_stack.ensure_up(settings, lambda _: None, services=["redis"])
        back_at = time.time()
        ids = stream.join(timeout=300)
        wait_for(lambda: results.distinct + dead.distinct >= len(ids), 300, interval=0.2)
        results.wait_quiet(2.0, 60)
        assert worker.running, "the worker died:\n" + "\n".join(worker.lines)
    finally:
        stream.close()
        worker.stop()
        results.close()
        dead.close()
    registry = registry_from_settings(settings)
    served = [
        r.value
        for r in read_topic(
            settings, topics.results, registry, max_records=results.total, idle_timeout=10
        )
        if r.value is not None
    ]
    degraded = [r for r in served if r["degraded"]]
    after = sorted(
        (r for r in served if not r["degraded"] and _ms(r["served_at"]) >= back_at * 1000),
        key=lambda r: _ms(r["served_at"]),
    )
    lost = len(set(ids) - set(results.counts()) - set(dead.counts()))
    figures = {
        "case": "redis restart mid-stream",
        "sent": len(ids),
        "results": results.total,
        "dead_letters": dead.total,
        "lost": lost,
        "duplicates": results.duplicates() + dead.duplicates(),
        "redis_down_s": round(back_at - down_at, 1),
        "degraded_results": len(degraded),
        "redis_in_use_again_after_back_s": (
            round(_ms(after[0]["served_at"]) / 1000 - back_at, 2) if after else None
        ),
    }
    report(figures)
    assert lost == 0, figures
    assert degraded, figures  # results served while Redis was down say so
    assert all(down_at * 1000 - 1000 <= _ms(r["served_at"]) for r in degraded), figures
    assert after and figures["redis_in_use_again_after_back_s"] <= RECOVERY_TARGET_S, figures  # type: ignore[operator]


def _ms(served_at: object) -> float:
    """served_at as epoch ms (a datetime when decoded with logical types)."""
    return served_at.timestamp() * 1000 if hasattr(served_at, "timestamp") else float(served_at)  # type: ignore[arg-type, union-attr]
