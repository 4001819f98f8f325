"""The admission script reading the fast path's cache in the same call: the requests found
there are neither charged nor marked pending, their values come back in order, a tagged
(cascade) value counts only with its tier tag; all against a real Redis."""

from __future__ import annotations

import struct

import pytest

from pipeline.gateway.keys import KeyStore, hash_key, redis_prefix
from pipeline.gateway.limits import Limits

PENDING = '{"status": "pending", "tenant": "acme"}'


def _row(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def test_cached_requests_are_answered_not_charged_and_not_pending(redis, namespace):
    key, _ = KeyStore(redis, namespace).add("acme", cost_per_hour=10)
    limits, prefix = Limits(redis, redis_prefix(namespace)), redis_prefix(namespace)
    names = [f"{namespace}cache:{i}" for i in range(4)]
    redis.client.set(names[1], _row(0.9, 0.1))
    redis.client.set(names[3], _row(0.2, 0.8))
    ids = [f"r{i}" for i in range(4)]
    admitted = limits.admit(hash_key(key), "fraud", 4, 99.0, request_ids=ids,
                            request_costs=[4.0, 1.0, 2.5, 1.0], cache_names=names,
                            pending=PENDING)  # fmt: skip
    assert admitted.outcome == "ok"
    assert admitted.cached == [None, _row(0.9, 0.1), None, _row(0.2, 0.8)]
    # charged r0 + r2 = 6.5 of 10 (not the 99 passed, nor all four's 8.5): 3.5 left
    assert admitted.cost_remaining == pytest.approx(3.5, abs=1e-3)
    pending = [redis.client.exists(f"{prefix}req:{i}") for i in ids]
    assert pending == [1, 0, 1, 0]
    assert [redis.client.llen(f"{prefix}resv:{i}") for i in ids] == [1, 0, 1, 0]
    # exactly the rest of the budget fits and not a unit beyond
    assert limits.admit(hash_key(key), "fraud", 1, 3.5).outcome == "ok"
    assert limits.admit(hash_key(key), "fraud", 1, 0.01).outcome == "cost"


def test_a_submission_answered_whole_by_the_cache_costs_nothing_even_past_the_budget(
    redis, namespace
):
    key, _ = KeyStore(redis, namespace).add("acme", cost_per_hour=1)
    limits = Limits(redis, redis_prefix(namespace))
    assert limits.admit(hash_key(key), "fraud", 1, 1.0).outcome == "ok"  # the budget spent
    name = f"{namespace}cache:hit"
    redis.client.set(name, _row(0.5, 0.5))
    admitted = limits.admit(hash_key(key), "fraud", 1, 1.0, request_ids=["r"],
                            request_costs=[1.0], cache_names=[name])  # fmt: skip
    assert admitted.outcome == "ok" and admitted.cached == [_row(0.5, 0.5)]
    missed = limits.admit(hash_key(key), "fraud", 1, 1.0, request_ids=["s"],
                          request_costs=[1.0], cache_names=[f"{namespace}cache:miss"])  # fmt: skip
    assert missed.outcome == "cost" and missed.cached == [None]  # refused: its values too


def test_a_tagged_value_counts_only_with_its_tier_tag(redis, namespace):
    key, _ = KeyStore(redis, namespace).add("acme", cost_per_hour=100)
    limits = Limits(redis, redis_prefix(namespace))
    values = [_row(0.1, 0.9, 1.0), _row(0.1, 0.9, 0.0), _row(0.1, 0.9, -0.0),
              _row(0.1, 0.9, 0.5), _row(0.1, 0.9, 2.0), b"\x00" * 4]  # fmt: skip
    names = [f"{namespace}cache:t{i}" for i in range(len(values))]
    for name, value in zip(names, values, strict=True):
        redis.client.set(name, value)
    ids = [f"t{i}" for i in range(len(values))]
    costs = [1.0] * len(ids)
    admitted = limits.admit(hash_key(key), "fraud", len(ids), 0.0, request_ids=ids,
                            request_costs=costs, cache_names=names, tagged=True)  # fmt: skip
    assert admitted.outcome == "ok" and admitted.cached == values
    # the three tagged answers are free; the other three (no tier tag) are charged
    assert admitted.cost_remaining == pytest.approx(97.0, abs=1e-3)
    untagged = limits.admit(hash_key(key), "fraud", len(ids), 0.0, request_ids=ids,
                            request_costs=costs, cache_names=names)  # fmt: skip
    assert untagged.cost_remaining == pytest.approx(97.0, abs=1e-3)  # all six answered


def test_names_ids_and_costs_must_pair_up(redis, namespace):
    limits = Limits(redis, redis_prefix(namespace))
    with pytest.raises(ValueError):
        limits.admit("x", "fraud", 2, 2.0, request_ids=["a", "b"], request_costs=[1.0, 1.0],
                     cache_names=["only-one"])  # fmt: skip
    with pytest.raises(ValueError):
        limits.admit("x", "fraud", 1, 1.0, request_ids=["a\nb"])
