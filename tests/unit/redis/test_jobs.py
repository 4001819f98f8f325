"""The job store and the admission rule against a real Redis: idempotent counts, refusals of
cancelled and over-budget jobs, one round trip per batch, and None when Redis is down."""

from __future__ import annotations

import uuid

import pytest

from pipeline.jobs.events import JobEvent, failure_info
from pipeline.jobs.spec import JobSpec
from pipeline.redis.client import DegradingRedis
from pipeline.redis.jobs import JobAdmission, JobStore
from pipeline.redis.state import scan_keys


@pytest.fixture
def redis(stack) -> DegradingRedis:
    return DegradingRedis(stack.redis_url, retry_after_s=0.1, timeout_s=1.0)


@pytest.fixture
def namespace(redis: DegradingRedis):
    ns = f"u{uuid.uuid4().hex[:8]}."
    yield ns
    keys = scan_keys(redis.client, f"inferstream:jobs:{ns}:*")
    if keys:
        redis.client.delete(*keys)


def _spec(job_id: str = "job_1", total: int = 4, budget: float | None = None) -> JobSpec:
    return JobSpec(job_id, "n", "docs", "/in.jsonl", total, 0, 0.01, 400, budget, "1.0.0", 1)


def test_counts_are_idempotent_and_a_completed_document_beats_its_refusal(redis, namespace):
    store = JobStore(redis, namespace)
    assert store.put_spec(_spec(), "in_progress")
    events = [
        JobEvent("deferred", "job_1", "a"),
        JobEvent("done", "job_1", "a", tokens=10),
        JobEvent("done", "job_1", "a", tokens=10),  # published twice: counted once
        JobEvent("cached", "job_1", "a"),
        JobEvent("failed", "job_1", "b", info=failure_info("invalid-feature", "text: empty")),
        JobEvent("deferred", "job_1", "c"),
        JobEvent("cancelled", "job_1", "d"),
        JobEvent("deferred", "job_1", "b"),  # already failed: stays failed
    ]
    assert store.apply(events) == ["job_1"]
    assert store.apply(events) == ["job_1"]  # the whole batch read again after a crash
    snapshot = store.snapshot("job_1")
    assert snapshot is not None and snapshot.state == "in_progress"
    c = snapshot.counts
    assert (c.total, c.completed, c.failed, c.deferred, c.cancelled, c.cached, c.tokens) == (
        4, 1, 1, 1, 1, 1, 10)  # fmt: skip
    assert snapshot.first_output_ms and snapshot.last_output_ms
    assert store.settled_documents("job_1") == {"a", "b"}
    assert store.failures("job_1") == {"b": {"reason": "invalid-feature", "detail": "text: empty"}}
    assert store.job_ids() == ["job_1"]
    assert store.known(["job_1", "job_2"]) == {"job_1": True, "job_2": False}


def test_state_moves_only_from_the_state_read(redis, namespace):
    store = JobStore(redis, namespace)
    store.put_spec(_spec(), "in_progress")
    assert store.force_state("job_1", "cancelled")
    assert not store.move("job_1", "in_progress", "finalizing")  # a cancel came in between
    assert store.state("job_1") == "cancelled"


def test_admission_refuses_cancelled_and_over_budget_jobs_in_one_round_trip(redis, namespace):
    store = JobStore(redis, namespace)
    store.put_spec(_spec("job_ok"), "in_progress")
    store.put_spec(_spec("job_cancel"), "in_progress")
    store.put_spec(_spec("job_budget", budget=1.0), "in_progress")
    store.put_spec(_spec("job_paused", budget=100.0), "budget_exceeded")
    store.force_state("job_cancel", "cancelled")
    store.apply([JobEvent("done", "job_budget", "a", tokens=100)])  # 100 x 0.01 = 1.0 model-s
    admission = JobAdmission(redis, namespace, cache_s=0.0)
    calls = []
    original = redis.call
    redis.call = lambda op: calls.append(op) or original(op)  # type: ignore[method-assign]
    jobs = ["job_ok", None, "job_cancel", "job_budget", "job_ok", "job_paused", "job_unknown"]
    assert admission.refusals(jobs) == [
        None, None, "job-cancelled", "budget-exceeded", None, "budget-exceeded", None]  # fmt: skip
    assert len(calls) == 1
    assert admission.refusals([None, None]) == [None, None] and len(calls) == 1


def test_admission_caches_its_verdicts_briefly(redis, namespace):
    store = JobStore(redis, namespace)
    store.put_spec(_spec(), "in_progress")
    admission = JobAdmission(redis, namespace, cache_s=60.0)
    assert admission.refusals(["job_1"]) == [None]
    store.force_state("job_1", "cancelled")
    assert admission.refusals(["job_1"]) == [None]  # still cached
    assert JobAdmission(redis, namespace, cache_s=0.0).refusals(["job_1"]) == ["job-cancelled"]


def test_redis_down_admits_everything_and_the_store_answers_none():
    down = DegradingRedis("redis://127.0.0.1:1/0", retry_after_s=0.05, timeout_s=0.05)
    assert JobAdmission(down, "x.").refusals(["job_1", None]) is None
    store = JobStore(down, "x.")
    assert store.snapshot("job_1") is None
    assert store.apply([JobEvent("done", "job_1", "a", tokens=1)]) is None
    with pytest.raises(Exception, match="Redis does not answer"):
        store.require(store.spec("job_1"))
