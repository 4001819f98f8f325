"""Chaos: poison messages in a live stream, with a worker subprocess scoring.

- a record over the broker's size limit: the broker refuses it and its producer is told
  (MSG_SIZE_TOO_LARGE), so it is not silently lost; nothing reaches the worker;
- a compressed record that expands hugely (16 MiB of zeros, a few KiB compressed) and a
  record with 5,000 headers: each is either scored or dead-lettered with a reason, and the
  valid requests around them are all scored (the stream goes on).
Reported: sent, results, dead letters, lost (must be 0), duplicates.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.client_config import client_config
from pipeline.kafka.producer import RequestProducer
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.chaos.conftest import report, worker_env
from tests.integration.helpers import TopicTally, WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

VALID = 600


def _raw(settings: Settings, **config: object) -> Producer:
    base = client_config(settings)
    base.pop("logger")
    return Producer({**base, "log_level": 0, **config})


def test_poison_messages_are_refused_or_dead_lettered_and_the_stream_goes_on(
    private_stack: Settings, tmp_path: Path
) -> None:
    namespace = f"chaosp{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(private_stack, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 2, 1, namespace)
    worker = WorkerProcess(worker_env(settings, tmp_path)).start(timeout=120)
    results = TopicTally(settings, topics.results).start()
    dead = TopicTally(settings, topics.dlq).start()
    records = TransactionGenerator(seed=96).generate(VALID).records
    poison_ids = ["poison-expanding", "poison-headers"]
    try:
        with RequestProducer(settings, topics) as producer:
            ids = producer.send_many(records[: VALID // 2])
        # over the broker's limit (message.max.bytes, 1 MiB by default): refused, and said so
        oversized: list[KafkaError | None] = []
        big = _raw(settings, **{"message.max.bytes": 8_000_000})
        big.produce(topics.requests, b"\x00" * 2_000_000, headers=[("request_id", b"poison-big")],
                    on_delivery=lambda err, _m: oversized.append(err))  # fmt: skip
        big.flush(30)
        # expands 16 MiB from a few KiB; thousands of headers
        zipped = _raw(settings, **{"compression.type": "zstd", "message.max.bytes": 20_000_000})
        zipped.produce(topics.requests, b"\x00" * (16 << 20),
                       headers=[("request_id", b"poison-expanding")])  # fmt: skip
        zipped.flush(30)
        many = _raw(settings)
        many.produce(topics.requests, b"\x00\x00\x00\x00\x01junk",
                     headers=[("request_id", b"poison-headers")]
                     + [(f"h{i}", b"x") for i in range(5000)])  # fmt: skip
        many.flush(30)
        with RequestProducer(settings, topics) as producer:
            ids += producer.send_many(records[VALID // 2 :])
        everything = {*ids, *poison_ids}
        wait_for(
            lambda: (
                len((set(results.counts()) | set(dead.counts())) & everything) >= len(everything)
            ),
            180,
            interval=0.2,
        )
        results.wait_quiet(2.0, 60)
        alive = worker.running
    finally:
        worker.stop()
        results.close()
        dead.close()
    served = set(results.counts()) | set(dead.counts())
    figures = {
        "case": "poison messages (oversized, expanding, 5,000 headers)",
        "sent": len(ids) + len(poison_ids),
        "results": results.total,
        "dead_letters": dead.total,
        "lost": len({*ids, *poison_ids} - served),
        "duplicates": results.duplicates() + dead.duplicates(),
        "oversized_refused_with": str(oversized[0].name()) if oversized and oversized[0] else None,
        "poison_dead_lettered": sorted(set(poison_ids) & set(dead.counts())),
    }
    report(figures)
    assert alive, "the worker died:\n" + "\n".join(worker.lines)
    assert oversized and oversized[0] is not None, figures  # the producer was told
    assert oversized[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, figures
    assert "poison-big" not in served, figures
    assert set(poison_ids) <= set(dead.counts()), figures  # each with its reason
    assert figures["lost"] == 0, figures
