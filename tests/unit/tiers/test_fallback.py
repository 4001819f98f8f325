"""The policy's fallback version through the real scorer and handler: a failing serving tier
(or its open breaker) and the rows the gateway marked over budget are served by it, flagged
degraded per row, at its cost, one call per batch for them."""

from __future__ import annotations

import pytest

from pipeline.core.messages import DEGRADE_HEADER
from pipeline.scoring import BatchScorer
from pipeline.tiers.costs import units_per_row
from pipeline.tiers.exceptions import PolicyError
from pipeline.tiers.policy import load_policy

from .conftest import CANDIDATE, LARGE, SMALL, write
from .test_cascade import PLUGIN, REGISTRY, SPEC, messages, run

CASCADE = {"primary": LARGE, "cascade": {"small": SMALL, "large": LARGE, "bands": [[0.0, 1.0]]}}


def _broken(model, what="exploded"):
    def predict(matrix):
        raise RuntimeError(what)

    model.predict = predict


def test_a_failing_large_tier_is_served_by_the_small_fallback_flagged_degraded(tiers):
    router_for, load = tiers
    router = router_for(CASCADE)
    small, large = load(SMALL), load(LARGE)
    _broken(large)
    scorer = BatchScorer(PLUGIN, SPEC, large, REGISTRY, worker_id="w", router=router)
    small.calls.clear()
    scored, results, provenance = run(scorer, messages(20))
    assert len(results) == 20 and not [m for m in scored.outbound if m.topic == SPEC.dlq]
    assert {(r["model_version"], r["degraded"]) for r in results} == {(SMALL, True)}
    assert {(p["route"], p["degraded"]) for p in provenance} == {("fallback-breaker", True)}
    assert {p["cost_units"] for p in provenance} == {units_per_row(small.manifest)}
    # the cascade's own small call, then the fallback's: one call per tier for the batch
    assert small.calls == [20, 20]
    assert scored.degraded == 20


def test_requests_marked_over_budget_get_the_fallback_and_the_rest_the_policy(tiers):
    router_for, load = tiers
    router = router_for({"primary": LARGE, "fallback": SMALL})
    small, large = load(SMALL), load(LARGE)
    batch = messages(30)
    marked = {3, 4, 17, 29}
    for i in marked:
        batch[i].headers.append((DEGRADE_HEADER, b"budget"))
    scorer = BatchScorer(PLUGIN, SPEC, large, REGISTRY, worker_id="w", router=router)
    small.calls.clear(), large.calls.clear()
    scored, results, provenance = run(scorer, batch)
    by_id = {p["request_id"]: p for p in provenance}
    ids = [dict(m.headers)["request_id"].decode() for m in batch]
    for i, request_id in enumerate(ids):
        p = by_id[request_id]
        if i in marked:
            assert (p["model_version"], p["route"], p["degraded"]) == (
                SMALL, "fallback-budget", True
            )
            assert p["cost_units"] == units_per_row(small.manifest)
        else:
            assert (p["model_version"], p["route"], p["degraded"]) == (LARGE, "primary", False)
            assert p["cost_units"] == units_per_row(large.manifest)
    results_by_id = {r["request_id"]: r for r in results}
    flags = [results_by_id[request_id]["degraded"] for request_id in ids]
    assert flags == [i in marked for i in range(30)]
    assert (small.calls, large.calls) == ([4], [26])
    assert scored.degraded == 4
    # their scores are the small model's own
    rows = scorer.prepare([batch[i] for i in sorted(marked)]).matrix
    expected = small.model.predict(rows)[:, 1]
    got = [by_id[ids[i]] for i in sorted(marked)]
    assert [results_by_id[p["request_id"]]["score"] for p in got] == pytest.approx(expected)


def test_marked_requests_without_a_fallback_are_served_as_usual(tiers):
    router_for, load = tiers
    router = router_for({"primary": LARGE})
    batch = messages(10)
    batch[0].headers.append((DEGRADE_HEADER, b"budget"))
    scorer = BatchScorer(PLUGIN, SPEC, load(LARGE), REGISTRY, worker_id="w", router=router)
    _, _, provenance = run(scorer, batch)
    assert {(p["route"], p["degraded"]) for p in provenance} == {("primary", False)}


def test_a_fallback_that_fails_for_marked_rows_leaves_them_to_the_policy(tiers):
    router_for, load = tiers
    router = router_for({"primary": LARGE, "fallback": SMALL})
    _broken(load(SMALL))
    batch = messages(10)
    batch[2].headers.append((DEGRADE_HEADER, b"budget"))
    scorer = BatchScorer(PLUGIN, SPEC, load(LARGE), REGISTRY, worker_id="w", router=router)
    _, results, provenance = run(scorer, batch)
    assert len(results) == 10
    assert {(p["route"], p["degraded"]) for p in provenance} == {("primary", False)}


def test_the_fallback_is_validated(models_dir):
    write(models_dir, {"primary": LARGE, "fallback": LARGE})
    with pytest.raises(PolicyError, match=r"fallback '1\.0\.0' is the version it stands in for"):
        load_policy(models_dir, "fraud")
    write(models_dir, {"primary": LARGE, "fallback": "9.9.9"})
    with pytest.raises(PolicyError, match=r"fallback names version '9\.9\.9'"):
        load_policy(models_dir, "fraud")
    write(models_dir, {"primary": LARGE, "fallback": CANDIDATE})
    policy = load_policy(models_dir, "fraud")
    assert policy is not None and policy.fallback_version == CANDIDATE
    assert policy.to_dict()["fallback"] == CANDIDATE
    write(models_dir, CASCADE)
    policy = load_policy(models_dir, "fraud")
    assert policy is not None and policy.fallback_version == SMALL
    assert "fallback" not in policy.to_dict()
