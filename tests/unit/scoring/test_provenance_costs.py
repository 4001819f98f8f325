"""The metered cost of each request (provenance v4): shares of the batch's model time, cache
hits free, escalated cascade rows carrying the large call, prices from the manifest, and the
records' sum equal to the batch total the cost counter adds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.core.batch import Batch
from pipeline.scoring import BatchScorer
from pipeline.scoring.handler import ScoringHandler
from pipeline.scoring.provenance import RequestCosts
from pipeline.streams.fraud.generator import TransactionGenerator
from pipeline.tiers.costs import units_per_row
from tests.unit.scoring.test_scorer import DECODE, PLUGIN, REGISTRY, SPEC, FakeModel, messages
from tests.unit.tiers.conftest import LARGE, SMALL, models_dir, tiers  # noqa: F401 (fixtures)
from tests.unit.tiers.test_cascade import BANDS
from tests.unit.tiers.test_cascade import messages as cascade_messages


def _model(provider: str = "CPUExecutionProvider", cost: dict | None = None) -> SimpleNamespace:
    manifest = SimpleNamespace(name="m", version="1", sections={"cost": cost} if cost else {},
                               directory=None)  # fmt: skip
    return SimpleNamespace(manifest=manifest, provider=provider, directory=None)


def test_equal_shares_are_constants_and_add_up_to_the_batch():
    costs = RequestCosts(cpu_threads=2, cpu_price=10.0)
    cost = costs.of_batch(_model(), 0.5, 4)
    assert cost.columns == {}  # every row pays the same: encoded once per batch
    assert cost.constants == {"cpu_seconds": 0.25, "gpu_seconds": 0.0, "metered_cost_units": 2.5}
    assert cost.total_units == 10.0 and cost.seconds == 1.0  # 0.5 s wall x 2 threads x 10
    assert cost.row_units().tolist() == [2.5] * 4


def test_cache_hits_cost_nothing_and_the_fresh_rows_share_the_batch():
    cost = RequestCosts(cpu_price=1.0).of_batch(_model(), 0.3, 3, [True, False, False])
    assert cost.columns["cpu_seconds"].tolist() == pytest.approx([0.0, 0.15, 0.15])
    assert cost.constants == {"gpu_seconds": 0.0}
    assert cost.total_units == pytest.approx(0.3)
    every_hit = RequestCosts().of_batch(_model(), 0.3, 2, [True, True])
    assert every_hit.total_units == 0 and every_hit.constants["metered_cost_units"] == 0


def test_weights_give_escalated_rows_their_share_of_the_large_call():
    # small model 1 unit/row on 4 rows, large 3 units/row on 1 of them: 7 units of work
    cost = RequestCosts(cpu_price=1.0).of_batch(_model(), 0.7, 4, None, np.array([1, 1, 1, 4.0]))
    assert cost.columns["cpu_seconds"].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.4])
    assert cost.total_units == pytest.approx(0.7)


def test_the_manifest_price_wins_and_gpu_seconds_use_the_gpu_price():
    priced = _model(cost={"price_units_per_cpu_second": 1e6, "units_per_row": 2.0})
    assert RequestCosts(cpu_price=3.0).of_batch(priced, 1e-6, 1).total_units == pytest.approx(1)
    assert RequestCosts(cpu_price=3.0).of_batch(_model(), 1.0, 1).total_units == 3.0
    gpu = RequestCosts(cpu_threads=4, cpu_price=1.0, gpu_price=10.0).of_batch(
        _model("CUDAExecutionProvider"), 0.5, 2
    )
    assert gpu.constants == {"gpu_seconds": 0.25, "cpu_seconds": 0.0, "metered_cost_units": 2.5}
    with pytest.raises(ValueError):
        RequestCosts(cpu_threads=0)


def test_a_scored_batch_s_records_carry_cost_and_sum_to_its_total():
    scorer = BatchScorer(PLUGIN, SPEC, FakeModel(), REGISTRY, worker_id="w",
                         costs=RequestCosts(cpu_threads=2, cpu_price=5.0))  # fmt: skip
    handler = ScoringHandler(scorer, [].extend, 5.0, 0, retry_backoff_s=0)
    scored = handler.handle(
        Batch(1, messages(TransactionGenerator(seed=9).generate(6).records), "full", 0, 0, {})
    )
    records = [DECODE(m.value) for m in scored.outbound if m.topic == SPEC.provenance]
    assert len(records) == 6 and scored.cost is not None
    model_s = scored.inference_ms / 1000
    assert [r["cpu_seconds"] for r in records] == pytest.approx([2 * model_s / 6] * 6)
    assert sum(r["metered_cost_units"] for r in records) == pytest.approx(scored.cost.total_units)
    assert scored.cost.total_units == pytest.approx(2 * 5.0 * model_s)


def test_cascade_rows_pay_in_proportion_to_the_tiers_they_ran_on(tiers):  # noqa: F811
    router_for, load = tiers
    router = router_for({"primary": LARGE,
                         "cascade": {"small": SMALL, "large": LARGE, "bands": BANDS}})  # fmt: skip
    large = load(LARGE)
    scorer = BatchScorer(PLUGIN, SPEC, large, REGISTRY, worker_id="w", router=router,
                         costs=RequestCosts(cpu_price=1.0))  # fmt: skip
    handler = ScoringHandler(scorer, [].extend, 5.0, 0, retry_backoff_s=0)
    scored = handler.handle(Batch(1, cascade_messages(400), "full", 0, 0, {}))
    records = [DECODE(m.value) for m in scored.outbound if m.topic == SPEC.provenance]
    escalated = np.array([r["escalated"] for r in records])
    assert 0 < escalated.sum() < len(records)
    cpu = np.array([r["cpu_seconds"] for r in records])
    small_units, large_units = units_per_row(load(SMALL).manifest), units_per_row(large.manifest)
    # an escalated row ran on both models: its share is (small + large) / small of a small row's
    ratio = cpu[escalated].mean() / cpu[~escalated].mean()
    assert ratio == pytest.approx((small_units + large_units) / small_units)
    assert cpu.sum() == pytest.approx(scored.inference_ms / 1000)  # the whole batch, shared
    assert sum(r["metered_cost_units"] for r in records) == pytest.approx(scored.cost.total_units)
