"""Chaos: the Kafka broker stopped and restarted mid-stream, with a worker subprocess scoring.

A private stack (its own Kafka and Redis, on free ports, in this test's state directory:
the shared broker other tests use is never stopped) carries a live stream (PacedProducer);
the broker gets SIGTERM mid-stream and is started again from the same data directory. The
case reports requests sent, results, dead letters, lost (must be 0), duplicates and the time
to recover: from the broker answering again to the first new result, and to the backlog
scored. `make chaos` runs it with more requests (CHAOS_REQUESTS, default 1,500 here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import stack as local_stack
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.helpers import PacedProducer, TopicTally, WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REQUESTS = int(os.environ.get("CHAOS_REQUESTS", "1500"))
RATE = 150.0  # requests/s: the stream lasts REQUESTS / RATE seconds
RECOVERY_TARGET_S = 30.0


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def private_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    rng = random.Random()
    while True:
        kafka, redis_port = rng.randrange(40000, 50000, 2), rng.randrange(50001, 60000, 2)
        if _free(kafka) and _free(kafka + 1) and _free(redis_port):
            break
    settings = dataclasses.replace(
        Settings.from_env(),
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        state_dir=tmp_path / "state",
    )
    monkeypatch.setenv("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")  # a second broker on this box
    log: list[str] = []
    try:
        local_stack.ensure_up(settings, log.append)
    except local_stack.StackError as exc:
        local_stack.down(settings, log.append)
        pytest.fail(f"the private stack did not start: {exc}")
    try:
        yield settings
    finally:
        local_stack.down(settings, log.append)


def test_broker_restart_mid_stream_loses_nothing(private_stack: Settings, tmp_path: Path) -> None:
    namespace = f"chaos{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(private_stack, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 4, 1, namespace)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERSTREAM_")}
    env.update(
        INFERSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        INFERSTREAM_REDIS_URL=settings.redis_url,
        INFERSTREAM_TOPIC_NAMESPACE=namespace,
        INFERSTREAM_APP_ID=f"inferstream-{namespace.rstrip('.')}",
        INFERSTREAM_STATE_DIR=str(tmp_path / "worker"),
        INFERSTREAM_CACHE_DIR=str(settings.cache_dir),
        INFERSTREAM_METRICS="off",
        INFERSTREAM_LOG_LEVEL="WARNING",
    )
    worker = WorkerProcess(env).start(timeout=120)
    results = TopicTally(settings.kafka_bootstrap, topics.results).start()
    dead = TopicTally(settings.kafka_bootstrap, topics.dlq).start()
    records = TransactionGenerator(seed=99).generate(REQUESTS).records
    # a third of the stream is held back until the broker is back: it is still going then
    stream = PacedProducer(settings, records, RATE, reserve=REQUESTS // 3).start()
    try:
        assert wait_for(lambda: results.distinct >= REQUESTS // 6, 120), "no results before"
        sent_before = stream.sent
        stopped_at = time.monotonic()
        local_stack.down(settings, lambda _: None, services=["kafka"])
        time.sleep(3)  # down: the producer buffers, the worker's clients retry
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
        results.wait_quiet(3.0, 60)
        assert worker.running, "the worker died:\n" + "\n".join(worker.lines)
    finally:
        stream.close()
        worker.stop()
        results.close()
        dead.close()
    served = set(results.counts()) | set(dead.counts())
    lost = len(set(ids) - served)
    report = {
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
    print("\nCHAOS " + json.dumps(report))
    out = os.environ.get("CHAOS_REPORT")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps(report) + "\n")
    assert lost == 0, report
    assert caught_up_s <= RECOVERY_TARGET_S, report
