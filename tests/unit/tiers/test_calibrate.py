"""Calibrating the cascade band: the fitted band meets the target with the fewest escalations;
the AUC helpers match scikit-learn's definitions on small cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.tiers.calibrate import evaluate, fit_band, levels, pr_auc, roc_auc, widen_for_auc
from pipeline.tiers.exceptions import CalibrationError

T = {"review": 0.3, "decline": 0.7}


def test_the_band_is_the_narrowest_that_reaches_the_target():
    rng = np.random.default_rng(3)
    small = rng.uniform(0, 1, 20_000)
    large = np.clip(small + rng.normal(0, 0.05, len(small)), 0, 1)
    for target in (0.99, 0.995, 0.999):
        band = fit_band(small, large, T, T, target)
        served = np.where((small >= band.lo) & (small <= band.hi), large, small)
        agreement = (levels(served, T) == levels(large, T)).mean()
        assert agreement >= target
        assert band.agreement == pytest.approx(agreement)
        # one row narrower on either side misses the target
        inside = np.sort(small[(small >= band.lo) & (small <= band.hi)])
        for lo, hi in ((inside[1], band.hi), (band.lo, inside[-2])):
            served = np.where((small >= lo) & (small <= hi), large, small)
            assert (levels(served, T) == levels(large, T)).mean() < target


def test_models_that_already_agree_escalate_nothing():
    scores = np.linspace(0, 0.99, 1000)
    band = fit_band(scores, scores, T, T, 0.999)
    assert (band.lo, band.hi, band.deferral, band.agreement) == (1.0, 1.0, 0.0, 1.0)


def test_a_target_outside_0_1_is_refused():
    with pytest.raises(CalibrationError, match="must be in"):
        fit_band(np.zeros(3), np.zeros(3), T, T, 1.5)


def test_auc_helpers():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert roc_auc(y, s) == pytest.approx(8 / 9)
    assert roc_auc(y, np.ones(6)) == 0.5  # ties count half
    # average precision: positives at ranks 1, 2, 4 -> (1 + 1 + 3/4) / 3
    assert pr_auc(y, s) == pytest.approx((1 + 1 + 0.75) / 3)


def test_widening_restores_the_auc_and_the_cost_follows_the_deferral():
    rng = np.random.default_rng(4)
    y = (rng.uniform(size=30_000) < 0.05).astype(int)
    large = np.clip(0.2 * y + rng.normal(0.3, 0.1, len(y)), 0, 1)
    small = np.clip(large + rng.normal(0, 0.15, len(y)), 0, 1)  # same mean, noisier ranking
    band = fit_band(small, large, T, T, 0.99)
    wide = widen_for_auc(small, large, y, T, T, band, 0.99, 0.005)
    assert wide.lo <= band.lo and wide.hi >= band.hi
    report = evaluate(small, large, y, T, T, [(wide.lo, wide.hi)], 1.0, 4.0)
    assert report["roc_auc_delta"] >= -0.005
    assert report["agreement"] >= 0.99
    assert report["cost_ratio"] == pytest.approx((1.0 + report["deferral"] * 4.0) / 4.0, abs=1e-3)


def test_held_out_rows_come_from_the_plug_ins_hook():
    from dataclasses import replace

    from pipeline.config import REPO_ROOT
    from pipeline.core.registry import get_plugin
    from pipeline.models.runtime import load_model
    from pipeline.tiers.calibrate import heldout

    fraud = get_plugin("fraud")
    model = load_model(REPO_ROOT / "models" / "fraud" / "1.0.0")
    x, y = heldout(model.manifest, fraud)
    assert len(x) == len(y) == model.manifest.metrics["rows_test"]
    assert set(np.unique(y)) == {0, 1}
    # the rows the manifest's held-out quality was measured on
    auc = roc_auc(y, model.predict(x)[:, 1])
    assert auc == pytest.approx(model.manifest.metrics["roc_auc"], abs=1e-4)

    with pytest.raises(CalibrationError, match="gives no labelled held-out data"):
        heldout(model.manifest, replace(fraud, heldout=None))

    def unlabelled(manifest):
        raise ValueError("manifest lacks training.seed")

    with pytest.raises(CalibrationError, match=r"stream 'fraud': manifest lacks training\.seed"):
        heldout(model.manifest, replace(fraud, heldout=unlabelled))
