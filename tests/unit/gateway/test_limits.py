"""The admission script against a real Redis: keys, grants, GCRA boundaries, budgets under
concurrency, idempotency and refunds; the key store's add / list / revoke."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

from pipeline.gateway.keys import KeyStore, hash_key, redis_prefix
from pipeline.gateway.limits import Limits
from pipeline.redis.client import DegradingRedis
from pipeline.redis.state import scan_keys


def _limits(redis, namespace) -> tuple[KeyStore, Limits]:
    return KeyStore(redis, namespace), Limits(redis, redis_prefix(namespace))


def test_keys_are_stored_hashed_and_revocation_is_immediate(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, info = store.add("acme", streams="fraud")
    assert key.startswith("isk_") and len(key) > 40
    dump = json.dumps([str(k) for k in scan_keys(redis.client, redis_prefix(namespace) + "*")])
    assert key not in dump and hash_key(key) in dump
    assert [k.key_id for k in store.list()] == [info.key_id]
    assert limits.admit(hash_key(key), "fraud", 1, 1.0).outcome == "ok"
    assert limits.admit(hash_key(key), "docs", 1, 1.0).outcome == "forbidden"
    assert limits.admit(hash_key("isk_wrong"), "fraud", 1, 1.0).outcome == "unknown"
    store.revoke(info.key_id[:8])
    assert limits.admit(hash_key(key), "fraud", 1, 1.0).outcome == "revoked"
    assert store.list()[0].revoked


def test_rate_burst_boundary_is_exact_and_says_when_to_retry(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", rps=0.01, burst=3)  # one request per 100 s, 3 at once
    digest = hash_key(key)
    first = limits.admit(digest, "fraud", 2, 0.0)
    assert first.outcome == "ok" and first.rate_remaining == 1
    assert first.headers()["RateLimit-Policy"] == '"requests";q=3;w=300'
    assert limits.admit(digest, "fraud", 1, 0.0).outcome == "ok"
    refused = limits.admit(digest, "fraud", 1, 0.0)
    assert refused.outcome == "rate"
    assert 99_000 < refused.retry_after_ms <= 100_000  # the next one fits in 100 s


def test_cost_budget_is_never_overspent_by_concurrent_requests(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", cost_per_hour=50)
    other, _ = store.add("globex", cost_per_hour=50)
    digest = hash_key(key)
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda _: limits.admit(digest, "fraud", 1, 1.0).outcome,
                                 range(200)))  # fmt: skip
    assert outcomes.count("ok") == 50 and outcomes.count("cost") == 150
    assert limits.admit(hash_key(other), "fraud", 1, 1.0).outcome == "ok"  # its own budget


def test_a_submission_that_does_not_fit_the_budget_is_refused_whole_and_refunds_return(
    redis, namespace
):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", cost_per_hour=5)
    digest = hash_key(key)
    assert limits.admit(digest, "fraud", 4, 4.0).outcome == "ok"
    assert limits.admit(digest, "fraud", 2, 2.0).outcome == "cost"  # 6 > 5: none admitted
    ok = limits.admit(digest, "fraud", 1, 1.0)
    assert ok.outcome == "ok" and int(ok.cost_remaining) == 0
    assert limits.admit(digest, "fraud", 1, 1.0).outcome == "cost"
    limits.refund("acme", 5, 3.0, "")  # three were never produced
    assert limits.admit(digest, "fraud", 3, 3.0).outcome == "ok"
    assert limits.admit(digest, "fraud", 1, 1.0).outcome == "cost"


def test_idempotency_key_replays_conflicts_and_mismatches_without_charging(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", rps=0.01, burst=1)
    digest = hash_key(key)
    first = limits.admit(digest, "fraud", 1, 1.0, idempotency_key="k1", fingerprint="fp1",
                         request_ids=["r1"], pending='{"status": "pending"}')  # fmt: skip
    assert first.outcome == "ok"
    again = limits.admit(digest, "fraud", 1, 1.0, idempotency_key="k1", fingerprint="fp1")
    assert again.outcome == "conflict"  # the first is still being produced
    limits.store_replay("acme", "k1", "fp1", '202\n{"ids": ["r1"]}', 60)
    replay = limits.admit(digest, "fraud", 1, 1.0, idempotency_key="k1", fingerprint="fp1")
    assert replay.outcome == "replay" and replay.replay == '202\n{"ids": ["r1"]}'
    other = limits.admit(digest, "fraud", 1, 1.0, idempotency_key="k1", fingerprint="fp2")
    assert other.outcome == "mismatch"
    # the pending status was written with the admission; auth-only reads return it
    seen = limits.admit(digest, "", 0, 0.0, auth_only=True, request_ids=["r1"])
    assert seen.outcome == "ok" and json.loads(seen.status) == {"status": "pending"}


def test_redis_down_is_none_not_an_error(namespace):
    down = DegradingRedis("redis://127.0.0.1:1/0", retry_after_s=0.05, timeout_s=0.05)
    assert Limits(down, redis_prefix(namespace)).admit("x", "fraud", 1, 1.0) is None


def _reserve(limits, digest, ids, cost_each):
    return limits.admit(digest, "fraud", len(ids), cost_each * len(ids), request_ids=ids,
                        request_costs=[cost_each] * len(ids),
                        pending='{"status": "pending", "tenant": "acme"}')  # fmt: skip


def test_settling_replaces_each_reservation_by_the_served_cost_once(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", cost_per_hour=10)
    digest = hash_key(key)
    assert _reserve(limits, digest, ["a", "b", "c", "d"], 2.0).outcome == "ok"  # 8 of 10
    # a: the worker's cache answered (0), b: dead-lettered (0), c: cost 3 instead of 2,
    # d: cost unknown (the estimate stands)
    settled = limits.settle([("a", 0.0), ("b", 0.0), ("c", 3.0), ("d", None)])
    assert settled == [("acme", -2.0), ("acme", -2.0), ("acme", 1.0), ("acme", 0.0)]
    assert limits.settle([("a", 0.0), ("c", 3.0)]) == []  # each is settled once
    assert limits.settle([("never-reserved", 0.0)]) == []
    # spent now: c 3 + d 2 = 5 of 10, so exactly 5 more fit and not a unit beyond
    assert limits.admit(digest, "fraud", 1, 5.0).outcome == "ok"
    assert limits.admit(digest, "fraud", 1, 0.01).outcome == "cost"


def test_a_refunded_submission_leaves_no_reservation_to_settle(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", cost_per_hour=4)
    digest = hash_key(key)
    assert _reserve(limits, digest, ["x", "y"], 2.0).outcome == "ok"
    limits.refund("acme", 4, 4.0, "", ["x", "y"])  # never produced
    assert limits.settle([("x", 0.0), ("y", 0.0)]) == []  # not refunded a second time
    assert _reserve(limits, digest, ["z1", "z2"], 2.0).outcome == "ok"  # the full 4 again
    assert limits.admit(digest, "fraud", 1, 0.01).outcome == "cost"


def test_a_request_id_held_by_another_tenant_is_refused_before_anything_is_charged(
    redis, namespace
):
    store, limits = _limits(redis, namespace)
    acme, _ = store.add("acme", cost_per_hour=10)
    globex, _ = store.add("globex", rps=0.01, burst=1, cost_per_hour=10)
    assert _reserve(limits, hash_key(acme), ["shared-1"], 1.0).outcome == "ok"
    taken = limits.admit(hash_key(globex), "fraud", 2, 2.0, request_ids=["mine", "shared-1"],
                         request_costs=[1.0, 1.0], pending='{"tenant": "globex"}')  # fmt: skip
    assert taken.outcome == "taken" and taken.replay == "shared-1"
    assert redis.client.get(redis_prefix(namespace) + "req:mine") is None  # nothing written
    # globex was not charged: its one request of burst 1 still fits
    ok = limits.admit(hash_key(globex), "fraud", 1, 1.0, request_ids=["mine"])
    assert ok.outcome == "ok" and int(ok.cost_remaining) == 9
    # the same tenant reusing its own id is the worker's rule (duplicate-request-id)
    assert _reserve(limits, hash_key(acme), ["shared-1"], 1.0).outcome == "ok"


def test_a_tenant_settled_past_its_budget_still_gets_what_costs_nothing(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", cost_per_hour=4)
    digest = hash_key(key)
    assert _reserve(limits, digest, ["p", "q"], 2.0).outcome == "ok"  # the whole budget
    assert limits.settle([("p", 3.0), ("q", 3.0)]) == [("acme", 1.0), ("acme", 1.0)]  # 6 of 4
    assert limits.admit(digest, "fraud", 1, 0.01).outcome == "cost"
    cached = limits.admit(digest, "fraud", 1, 0.0)  # answered from the cache: no cost
    assert cached.outcome == "ok" and cached.cost_remaining == 0


def test_an_id_its_tenant_reuses_has_one_reservation_per_submission(redis, namespace):
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", cost_per_hour=10)
    digest = hash_key(key)
    for _ in range(3):
        assert _reserve(limits, digest, ["dup"], 2.0).outcome == "ok"  # 6 of 10
    limits.refund("acme", 10, 2.0, "", ["dup"])  # the third was never produced: 4 of 10
    # the first was served (at its estimate), the repeat dead-lettered: refunded
    assert limits.settle([("dup", 2.0)]) == [("acme", 0.0)]
    assert limits.settle([("dup", 0.0)]) == [("acme", -2.0)]
    assert limits.settle([("dup", 0.0)]) == []  # none left: indexed again, nothing changes
    assert limits.admit(digest, "fraud", 1, 8.0).outcome == "ok"  # exactly 2 spent
    assert limits.admit(digest, "fraud", 1, 0.01).outcome == "cost"


def test_batched_admissions_load_the_script_when_the_server_lacks_it(redis, namespace):
    """admit_many runs EVALSHA without asking SCRIPT EXISTS first; a server without the
    script (restarted, flushed) answers NOSCRIPT, and the batch still gets its decisions -
    each run exactly once (one rate step per admitted request)."""
    store, limits = _limits(redis, namespace)
    key, _ = store.add("acme", rps=0.01, burst=3)  # a step of 100 s: no refill meanwhile
    script = limits._admit
    # a script body this Redis has never seen (a comment changes its SHA): the NOSCRIPT path
    script.script += f"\n-- {uuid.uuid4().hex}"
    script.sha = _sha1(script.script)
    calls = [{"key_digest": hash_key(key), "stream": "fraud", "count": 1, "cost": 0.0}] * 4
    outcomes = [a.outcome for a in limits.admit_many(calls)]
    assert outcomes == ["ok", "ok", "ok", "rate"]  # burst 3: the 4th is refused, none twice
    assert redis.client.script_exists(script.sha) == [True]
    assert [a.outcome for a in limits.admit_many(calls[:1])] == ["rate"]


def _sha1(text: str | bytes) -> str:
    import hashlib

    return hashlib.sha1(text.encode() if isinstance(text, str) else text).hexdigest()
