"""Shadow versions after delivery: one shadow record per served request, the served output
alongside; a failing or slow shadow never changes or delays what is served."""

from __future__ import annotations

import threading

import numpy as np

from pipeline.codec.columns import ColumnEncoder
from pipeline.core.batch import Batch
from pipeline.scoring import BatchScorer
from pipeline.scoring.handler import ScoringHandler
from pipeline.tiers.shadow import ShadowScorer, after_delivery, shadow_report

from .conftest import CANDIDATE, LARGE, SMALL
from .test_cascade import DECODE, PLUGIN, REGISTRY, SPEC, messages


class Published(list):
    def __call__(self, out):
        self.extend(out)


def shadow_setup(tiers, policy, published):
    router_for, load = tiers
    router = router_for(policy)
    shadow = ShadowScorer(
        lambda: router.policy.shadow, router.tier,
        ColumnEncoder(REGISTRY, REGISTRY.catalog.latest("shadow_result"), SPEC.shadow),
        SPEC.shadow, published, "fraud", "card_id",
    )  # fmt: skip
    scorer = BatchScorer(PLUGIN, SPEC, load(LARGE), REGISTRY, worker_id="w", router=router,
                         shadow=shadow)  # fmt: skip
    delivered = Published()
    handler = ScoringHandler(scorer, after_delivery(delivered), 5.0, 0, retry_backoff_s=0)
    return router, shadow, handler, delivered


def test_every_served_request_gets_a_shadow_record_with_the_served_output(tiers):
    published = Published()
    policy = {"primary": LARGE, "shadow": [CANDIDATE, SMALL],
              "cascade": {"small": SMALL, "large": LARGE, "bands": [[0.05, 0.5]]}}  # fmt: skip
    _, shadow, handler, delivered = shadow_setup(tiers, policy, published)
    for i in range(3):
        handler.handle(Batch(i, messages(100, seed=i), "full", 0.0, 0.0, {}))
    assert shadow.drain()
    results = {r["request_id"]: r for r in (DECODE(m.value) for m in delivered
                                            if m.topic == SPEC.results)}  # fmt: skip
    provenance = {p["request_id"]: p for p in (DECODE(m.value) for m in delivered
                                               if m.topic == SPEC.provenance)}  # fmt: skip
    assert len(results) == 300
    records = [DECODE(m.value) for m in published]
    assert {m.topic for m in published} == {SPEC.shadow}
    for version in (CANDIDATE, SMALL):
        mine = {r["request_id"]: r for r in records if r["shadow_version"] == version}
        assert mine.keys() == results.keys()
        for rid, r in mine.items():
            assert r["served_score"] == results[rid]["score"]
            assert r["served_decision"] == results[rid]["decision"]
            assert r["served_version"] == results[rid]["model_version"]
            assert r["served_route"] == provenance[rid]["route"]
            assert r["flipped"] == (r["shadow_decision"] != r["served_decision"])
            assert np.isclose(r["score_delta"], r["shadow_score"] - r["served_score"])
    # the small model in shadow scores exactly what it served on the cascade-small rows
    small_rows = [r for r in records if r["shadow_version"] == SMALL
                  and r["served_route"] == "cascade-small"]  # fmt: skip
    assert small_rows and all(r["score_delta"] == 0 for r in small_rows)
    report = shadow_report(records)
    assert report["versions"][CANDIDATE]["rows"] == 300
    assert set(report["versions"]) == {CANDIDATE, SMALL}


def test_a_failing_shadow_leaves_serving_untouched(tiers):
    published = Published()
    router, shadow, handler, delivered = shadow_setup(
        tiers, {"primary": LARGE, "shadow": [CANDIDATE]}, published
    )
    batch = messages(50)
    handler.handle(Batch(0, batch, "full", 0.0, 0.0, {}))
    assert shadow.drain()
    served_before = [m.value[-200:] for m in delivered if m.topic == SPEC.results]

    def broken(matrix):
        raise RuntimeError("shadow exploded")

    router.tier(CANDIDATE).model.predict = broken
    published.clear()
    delivered.clear()
    handler.handle(Batch(1, batch, "full", 0.0, 0.0, {}))
    assert shadow.drain()
    assert published == []
    assert shadow.stats.failures == 1
    served = [DECODE(m.value) for m in delivered if m.topic == SPEC.results]
    assert len(served) == 50 and {r["model_version"] for r in served} == {LARGE}
    assert len(served_before) == 50


def test_a_slow_shadow_drops_jobs_instead_of_holding_serving(tiers):
    published = Published()
    router, shadow, handler, delivered = shadow_setup(
        tiers, {"primary": LARGE, "shadow": [CANDIDATE]}, published
    )
    gate = threading.Event()
    model = router.tier(CANDIDATE).model
    real = model.predict
    model.predict = lambda m: (gate.wait(30), real(m))[1]
    for i in range(20):  # the queue holds 8 batches (+1 on the shadow thread)
        handler.handle(Batch(i, messages(10, seed=i), "full", 0.0, 0.0, {}))
    assert len([m for m in delivered if m.topic == SPEC.results]) == 200
    assert shadow.stats.dropped >= 20 - 9
    gate.set()
    assert shadow.drain()
