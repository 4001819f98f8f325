"""The cascade through the real scorer and handler: routing math, provenance per request, calls
per batch, and that a scorer without a policy writes what it always wrote."""

from __future__ import annotations

import numpy as np

from pipeline.codec import AvroDeserializer, AvroSerializer, SchemaCatalog
from pipeline.codec.registry import LocalRegistry
from pipeline.config import REPO_ROOT
from pipeline.core.batch import Batch
from pipeline.core.registry import get_plugin, stream_topics
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.scoring import BatchScorer, InboundMessage
from pipeline.scoring.handler import ScoringHandler
from pipeline.streams.fraud.generator import TransactionGenerator
from pipeline.tiers.costs import units_per_row
from pipeline.tiers.policy import escalated_mask

from .conftest import LARGE, SMALL

REGISTRY = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
PLUGIN = get_plugin("fraud")
SPEC = stream_topics("fraud")
ENCODE = AvroSerializer(REGISTRY, REGISTRY.catalog.latest("fraud_request"), SPEC.requests)
DECODE = AvroDeserializer(REGISTRY)
BANDS = [[0.004, 0.03], [0.05, 0.95]]


def messages(n, seed=5):
    records = TransactionGenerator(seed=seed, fraud_share=0.1).generate(n).records
    return [
        InboundMessage(SPEC.requests, 0, i, 1_795_400_000_000, r["card_id"].encode(), ENCODE(r),
                       [("request_id", r["request_id"].encode())])
        for i, r in enumerate(records)
    ]  # fmt: skip


def run(scorer, batch):
    delivered = []
    handler = ScoringHandler(scorer, delivered.extend, 5.0, 0, retry_backoff_s=0)
    scored = handler.handle(Batch(1, batch, "full", 0.0, 0.0, {}))
    results = [DECODE(m.value) for m in scored.outbound if m.topic == SPEC.results]
    provenance = [DECODE(m.value) for m in scored.outbound if m.topic == SPEC.provenance]
    return scored, results, provenance


def test_the_escalated_share_of_a_batch_is_the_bands_share_of_its_small_scores(tiers):
    router_for, load = tiers
    router = router_for({"primary": LARGE,
                         "cascade": {"small": SMALL, "large": LARGE, "bands": BANDS}})  # fmt: skip
    small, large = load(SMALL), load(LARGE)
    scorer = BatchScorer(PLUGIN, SPEC, large, REGISTRY, worker_id="w", router=router)
    batch = messages(400)
    small.calls.clear(), large.calls.clear()
    _, results, provenance = run(scorer, batch)

    prepared = scorer.prepare(batch)
    small_scores = small.model.predict(prepared.matrix)[:, 1]
    band = escalated_mask(small_scores, [tuple(b) for b in BANDS])
    assert 0 < band.sum() < len(band)
    assert small.calls == [400], "the small model scores every row, in one call"
    assert large.calls == [int(band.sum())], "the band's rows, together, in one more call"

    escalated = np.array([p["escalated"] for p in provenance])
    assert escalated.mean() == band.mean()
    assert (escalated == band).all()
    large_scores = large.model.predict(prepared.matrix)[:, 1]
    expected = np.where(band, large_scores, small_scores)
    assert np.allclose([r["score"] for r in results], expected)
    routes = [p["route"] for p in provenance]
    assert {r for r, e in zip(routes, band, strict=True) if e} == {"cascade-large"}
    assert {r for r, e in zip(routes, band, strict=True) if not e} == {"cascade-small"}
    versions = [(r["model_version"], p["model_version"]) for r, p in zip(results, provenance,
                                                                          strict=True)]  # fmt: skip
    assert versions == [(LARGE, LARGE) if e else (SMALL, SMALL) for e in band]
    assert {p["model_sha256"] for p, e in zip(provenance, band, strict=True) if e} == {large.sha256}
    cost_small, cost_large = units_per_row(small.manifest), units_per_row(large.manifest)
    assert cost_small > 0 and cost_large > cost_small
    assert np.allclose([p["cost_units"] for p in provenance],
                       np.where(band, cost_small + cost_large, cost_small))  # fmt: skip
    assert {p["routing_policy"] for p in provenance} == {router.policy.digest}
    # decisions come from the thresholds of the model that served the row
    small_t, large_t = small.manifest.thresholds, large.manifest.thresholds
    for r, e in zip(results, band, strict=True):
        t = large_t if e else small_t
        want = ("decline" if r["score"] >= t["decline"]
                else "review" if r["score"] >= t["review"] else "approve")  # fmt: skip
        assert r["decision"] == want


def test_a_batch_with_nothing_in_the_band_is_one_call(tiers):
    router_for, load = tiers
    router = router_for(
        {"primary": LARGE, "cascade": {"small": SMALL, "large": LARGE, "bands": [[1.0, 1.0]]}}
    )
    large = load(LARGE)
    scorer = BatchScorer(PLUGIN, SPEC, large, REGISTRY, worker_id="w", router=router)
    large.calls.clear()
    _, results, provenance = run(scorer, messages(100))
    assert large.calls == []
    assert {p["route"] for p in provenance} == {"cascade-small"}
    assert {r["model_version"] for r in results} == {SMALL}


def test_a_primary_only_policy_serves_its_primary(tiers):
    router_for, load = tiers
    router = router_for({"primary": SMALL})
    scorer = BatchScorer(PLUGIN, SPEC, load(LARGE), REGISTRY, worker_id="w", router=router)
    _, results, provenance = run(scorer, messages(50))
    assert {r["model_version"] for r in results} == {SMALL}
    assert {(p["route"], p["escalated"]) for p in provenance} == {("primary", False)}


def test_without_a_router_provenance_says_primary_with_the_models_cost(models_dir):
    model = load_model(resolve_model_dir(models_dir, "fraud", LARGE))
    scorer = BatchScorer(PLUGIN, SPEC, model, REGISTRY, worker_id="w")
    _, results, provenance = run(scorer, messages(30))
    assert {r["model_version"] for r in results} == {LARGE}
    assert {(p["route"], p["escalated"], p["routing_policy"]) for p in provenance} == {
        ("primary", False, "")
    }
    assert {p["cost_units"] for p in provenance} == {units_per_row(model.manifest)}


def test_a_failing_tier_with_nothing_to_fall_back_on_dead_letters_the_batch(tiers):
    router_for, load = tiers
    router = router_for(  # the fallback is the cascade's small model: the one that fails
        {"primary": LARGE, "cascade": {"small": SMALL, "large": LARGE, "bands": [[0.0, 1.0]]}}
    )
    small = load(SMALL)

    def broken(matrix):
        raise RuntimeError("small exploded")

    small.predict = broken
    scorer = BatchScorer(PLUGIN, SPEC, load(LARGE), REGISTRY, worker_id="w", router=router)
    scored, results, _ = run(scorer, messages(20))
    assert results == []
    dead = [m for m in scored.outbound if m.topic == SPEC.dlq]
    assert len(dead) == 20
    assert dict(dead[0].headers)["dlq.reason"] == b"model-error"
