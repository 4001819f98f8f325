"""Replay's throughput as a ratio to the scoring worker's flat-out rate, in the same run.

A fresh namespace gets a backlog of N fraud requests; the worker drains it flat out (timed
from its start until N results are on the results topic, so its start-up is counted, as a
replay's is), then `pipeline.replay.run.replay` re-scores the same range against what was
served. Run: `python -m bench.replay_rate [N]` with the stack up (`inferstream stack up`).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import replace

from confluent_kafka import Consumer, TopicPartition

from bench.events import EventPool, load_backlog
from pipeline.config import settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.client_config import client_config
from pipeline.replay.ranges import TimeRange
from pipeline.replay.run import replay
from pipeline.stack.worker_process import WorkerProcess


def end_total(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = Consumer({**client_config(bootstrap), "group.id": "bench-replay-rate"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        )
    finally:
        consumer.close()


def main(n: int) -> dict[str, float]:
    namespace = f"bench-replay-{uuid.uuid4().hex[:6]}."
    cfg = replace(settings(), topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(cfg.kafka_bootstrap, ["fraud"], cfg.topic_partitions, 1, namespace)
    before = int(time.time() * 1000)
    load_backlog(cfg.kafka_bootstrap, topics.requests, EventPool(cfg).events(0, n))
    after = int(time.time() * 1000) + 1
    env = dict(os.environ, INFERSTREAM_TOPIC_NAMESPACE=namespace, INFERSTREAM_LOG_LEVEL="WARNING")
    started = time.monotonic()
    worker = WorkerProcess(env, "fraud", "--no-cache").start()
    try:
        while end_total(cfg.kafka_bootstrap, topics.results, cfg.topic_partitions) < n:
            time.sleep(0.05)
        serve_s = time.monotonic() - started
    finally:
        worker.stop()
    report = replay(cfg, "fraud", TimeRange(before, after))
    assert report["counts"]["matched"] == n, report["counts"]
    out = {
        "requests": n,
        "worker_per_s": n / serve_s,
        "replay_per_s": report["replayed_per_s"],
        "ratio": report["replayed_per_s"] / (n / serve_s),
        "agree": report["agree"],
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
