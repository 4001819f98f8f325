"""The Redis result cache on the real server, and scoring on without it when Redis is down."""

from __future__ import annotations

import random

import pytest

from pipeline.core.registry import stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.redis.cache import ResultCache
from pipeline.stack.worker_process import WorkerProcess
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.helpers import read_all, values

pytestmark = pytest.mark.integration


def produce(settings, records):
    with RequestProducer(settings, stream_topics("fraud", settings.topic_namespace)) as producer:
        return producer.send_many(records)


def test_cache_round_trip_on_real_redis(stack, namespace):
    cache = ResultCache(stack.redis_url, namespace=namespace, ttl_s=60)
    assert cache.get_many(["a", "b"]) == [None, None]
    assert cache.put_many(["a"], [0.25])
    assert cache.get_many(["a", "b"]) == [0.25, None]
    assert not cache.degraded


def test_replayed_requests_are_served_from_the_cache(settings, worker):
    # a seed of this run's own: on a reused Redis, fixed transactions may be cached already
    records = TransactionGenerator(seed=random.getrandbits(48)).generate(200).records
    produce(settings, records)
    spec = stream_topics("fraud", settings.topic_namespace)
    first = values(read_all(settings, spec.provenance, expected=200))
    # the same transactions again under new request ids: same features, same data_hash
    for record in records:
        record["request_id"] = "again-" + record["request_id"]
    produce(settings, records)
    provenance = values(read_all(settings, spec.provenance, expected=400))
    again = [p for p in provenance if p["request_id"].startswith("again-")]
    assert len(again) == 200
    assert all(p["cache_hit"] for p in again)
    assert not any(p["cache_hit"] for p in first)
    results = {r["request_id"]: r for r in values(read_all(settings, spec.results, expected=400))}
    for record in records:
        original = results[record["request_id"].removeprefix("again-")]
        assert results[record["request_id"]]["score"] == original["score"]


def test_redis_down_degrades_but_every_request_is_scored(settings, env):
    env = {**env, "INFERSTREAM_REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens there
    worker = WorkerProcess(env).start()
    try:
        ids = produce(settings, TransactionGenerator(seed=32).generate(300).records)
        spec = stream_topics("fraud", settings.topic_namespace)
        results = values(read_all(settings, spec.results, expected=300))
    finally:
        worker.stop()
    assert sorted(r["request_id"] for r in results) == sorted(ids)
    assert all(r["degraded"] for r in results)


def test_a_request_id_reused_by_a_different_request_is_dead_lettered(settings, worker):
    """Same id, same payload: a replay, scored again. Same id, other payload: dead-lettered."""
    spec = stream_topics("fraud", settings.topic_namespace)
    first, second, third = TransactionGenerator(seed=random.getrandbits(48)).generate(3).records
    taken = f"taken-{random.getrandbits(32)}"
    produce(settings, [{**first, "request_id": taken}])
    assert len(read_all(settings, spec.results, expected=1)) == 1
    produce(
        settings,
        [
            {**first, "request_id": taken},  # replayed as it was
            {**second, "request_id": taken},  # someone else's request under the same id
            third,
        ],
    )
    results = values(read_all(settings, spec.results, expected=3))
    assert sorted(r["request_id"] for r in results) == sorted([taken, taken, third["request_id"]])
    dead = read_all(settings, spec.dlq, expected=1)
    assert [r.headers["dlq.reason"] for r in dead] == [b"duplicate-request-id"]
    assert taken in dead[0].headers["dlq.detail"].decode()
