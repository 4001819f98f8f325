"""The result cache under a routing policy, through the real scorer and handler: a repeat is
served from the cache only when it would get the same model's answer (pipeline/tiers/cached.py).
The cache is a dict (the Redis adapter's round trip is tests/integration/test_redis_cache.py)."""

from __future__ import annotations

import numpy as np

from pipeline.scoring import BatchScorer
from pipeline.tiers.canary import Canary, CanaryStore, in_canary

from .conftest import CANDIDATE, LARGE, SMALL, write
from .test_canary import FakeRedis
from .test_cascade import PLUGIN, REGISTRY, SPEC, messages, run

CASCADE = {"primary": LARGE, "cascade": {"small": SMALL, "large": LARGE, "bands": [[0.01, 0.5]]}}


class DictCache:
    """OutputCache over a dict; counts what was asked and stored."""

    def __init__(self):
        self.rows, self.asked, self.stored = {}, [], []

    def get_many(self, keys):
        self.asked += list(keys)
        return [self.rows.get(k) for k in keys]

    def put_many(self, keys, rows):
        for key, row in zip(keys, np.asarray(rows, dtype=np.float64), strict=True):
            self.rows[key] = row.copy()
            self.stored.append(key)
        return True


def scorer_for(router, large, cache):
    return BatchScorer(PLUGIN, SPEC, large, REGISTRY, cache=cache, worker_id="w", router=router)


def served(results, provenance):
    return [
        (r["score"], r["decision"], p["model_version"], p["route"], p["escalated"])
        for r, p in zip(results, provenance, strict=True)
    ]


def test_a_repeat_under_a_cascade_is_served_from_the_cache_with_the_same_answer(tiers):
    router_for, load = tiers
    router = router_for(CASCADE)
    small, large = load(SMALL), load(LARGE)
    cache = DictCache()
    scorer = scorer_for(router, large, cache)
    batch = messages(300)
    _, results, provenance = run(scorer, batch)
    first = served(results, provenance)
    assert not any(p["cache_hit"] for p in provenance)
    escalated = [p["escalated"] for p in provenance]
    assert 0 < sum(escalated) < len(escalated)
    assert len(cache.stored) == 300 and all(k.startswith("cascade:") for k in cache.stored)
    calls = (len(small.calls), len(large.calls))

    scored, results, provenance = run(scorer, batch)
    assert all(p["cache_hit"] for p in provenance)
    assert (len(small.calls), len(large.calls)) == calls, "no model call for a full hit"
    assert scored.cache_hits == 300
    assert served(results, provenance) == first, "the cascade's own answer, tier by tier"


def test_without_a_policy_the_router_keeps_the_single_model_keys_and_values(tiers, models_dir):
    router_for, load = tiers
    router = router_for(CASCADE)
    (models_dir / "fraud" / "routing.json").unlink()
    router.watcher.check()
    assert router.policy is None
    large = load(LARGE)
    routed_cache, plain_cache = DictCache(), DictCache()
    batch = messages(50)
    run(scorer_for(router, large, routed_cache), batch)
    run(BatchScorer(PLUGIN, SPEC, large, REGISTRY, cache=plain_cache, worker_id="w"), batch)
    assert routed_cache.rows.keys() == plain_cache.rows.keys()  # `<version>:<data_hash>`
    assert all(k.startswith(f"{LARGE}:") for k in plain_cache.rows)
    for key, row in plain_cache.rows.items():
        assert np.array_equal(routed_cache.rows[key], row)


def test_a_policy_change_turns_other_models_answers_into_misses(tiers, models_dir):
    router_for, load = tiers
    router = router_for(CASCADE)
    large = load(LARGE)
    cache = DictCache()
    scorer = scorer_for(router, large, cache)
    batch = messages(200, seed=6)
    run(scorer, batch)  # stored under the cascade's scope

    write(models_dir, {"primary": LARGE})
    router.watcher.check()
    _, results, provenance = run(scorer, batch)
    assert not any(p["cache_hit"] for p in provenance), "the cascade's rows are not 1.0.0's"
    assert {(p["route"], p["model_version"]) for p in provenance} == {("primary", LARGE)}
    large_only = [r["score"] for r in results]

    (models_dir / "fraud" / "routing.json").unlink()  # no policy: 1.0.0 serves, same answer
    router.watcher.check()
    _, results, provenance = run(scorer, batch)
    assert all(p["cache_hit"] for p in provenance)
    assert [r["score"] for r in results] == large_only

    bands = {**CASCADE["cascade"], "bands": [[0.02, 0.5]]}  # another band: another answer
    write(models_dir, {"primary": LARGE, "cascade": bands})
    router.watcher.check()
    _, _, provenance = run(scorer, batch)
    assert not any(p["cache_hit"] for p in provenance)


def test_a_hit_looked_up_under_the_previous_policy_is_not_served(tiers, models_dir):
    router_for, load = tiers
    router = router_for({"primary": LARGE})
    large = load(LARGE)
    cache = DictCache()
    scorer = scorer_for(router, large, cache)
    batch = messages(100, seed=7)
    run(scorer, batch)
    prepared = scorer.prepare(batch)  # looked up under primary 1.0.0: all found
    assert all(row is not None for row in prepared.cached_outputs)
    write(models_dir, CASCADE)  # the policy changes between the lookup and the model call
    router.watcher.check()
    scorer.infer(prepared)
    routing = prepared.routing
    assert routing is not None and routing.model_calls >= 1
    assert all(row is None for row in prepared.cached_outputs), "1.0.0's rows, not the cascade's"
    assert set(routing.route) <= {"cascade-small", "cascade-large"}


def test_a_running_canary_caches_none_of_its_rows_and_a_promoted_one_only_its_own(tiers):
    router_for, load = tiers
    router = router_for({"primary": LARGE,
                         "canary": {"version": CANDIDATE, "share_percent": 30}})  # fmt: skip
    redis = FakeRedis()
    router.canary = Canary("fraud", CanaryStore(redis, "c:"))
    large = load(LARGE)
    cache = DictCache()
    scorer = scorer_for(router, large, cache)
    batch = messages(300, seed=8)
    keys = [m.key.decode() for m in batch]
    inside = in_canary(keys, 30)
    assert 0 < inside.sum() < len(inside)
    run(scorer, batch)  # the canary's state is made on the first batch: nothing cached yet
    assert cache.stored == []
    _, _, provenance = run(scorer, batch)
    assert router.canary.state.state == "running"
    stored = {k.removeprefix(f"{LARGE}:") for k in cache.stored}
    assert len(stored) == int((~inside).sum()), "the stable rows only"
    _, _, provenance = run(scorer, batch)
    hits = np.array([p["cache_hit"] for p in provenance])
    assert (hits == ~inside).all(), "canary rows are paired every time, never cached"
    assert {p["route"] for p, i in zip(provenance, inside, strict=True) if i} == {"canary"}

    router.canary.state.state = "promoted"  # the candidate now answers every row
    _, _, provenance = run(scorer, batch)
    assert not any(p["cache_hit"] for p in provenance), "1.0.0's rows are not the candidate's"
    assert {p["model_version"] for p in provenance} == {CANDIDATE}
    _, _, provenance = run(scorer, batch)
    assert all(p["cache_hit"] for p in provenance)
    assert {(p["model_version"], p["route"]) for p in provenance} == {(CANDIDATE, "primary")}
