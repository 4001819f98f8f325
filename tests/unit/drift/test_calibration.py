"""The calibrated threshold reproduces its ERT on fresh stationary data (fixed seeds)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from pipeline.drift import Calibrator, DriftConfig, DriftDetector, NullCurve, Reference
from pipeline.drift.calibration import SHIPPED_DIR, ks_key
from pipeline.drift.dependence import CategoricalNull, DependentNull


def _false_alarm_rate(detector: DriftDetector, stream: np.ndarray, batch: int) -> int:
    opens = 0
    for start in range(0, stream.shape[0], batch):
        opens += sum(e.state == "OPEN" for e in detector.update(stream[start : start + batch]))
    return opens


def test_ks_calibration_reproduces_its_ert(tmp_path) -> None:
    # a small configuration, calibrated from scratch here (not shipped), then verified
    config = DriftConfig(windows=(50, 150), check_every=10, target_ert=2000)
    d, n_ref, rows_per_reference = 4, 1000, 50_000
    rng = np.random.default_rng(2024)
    rows = opens = 0
    thresholds = set()
    for _ in range(8):  # fresh references too: the ERT is an average over them
        names = [f"f{j}" for j in range(d)]
        reference = Reference.from_rows(rng.standard_normal((n_ref, d)), names)
        detector = DriftDetector(reference, config, tmp_path)
        thresholds.add(float(detector.thresholds[0]))
        stream = rng.standard_normal((rows_per_reference, d)).astype(np.float32)
        opens += _false_alarm_rate(detector, stream, config.check_every)
        rows += rows_per_reference
    assert len(thresholds) == 1  # one calibration, cached
    assert list(tmp_path.glob("ks-*.json"))
    ert = rows / opens
    # 400k rows, ~200 expected false alarms: +-25% is ~3.5 standard errors
    print(f"measured ERT {ert:.0f} over {rows} rows ({opens} false alarms)")
    assert ert == pytest.approx(config.target_ert, rel=0.25), (ert, opens)


def test_g_calibration_reproduces_its_ert(tmp_path) -> None:
    config = DriftConfig(windows=(50, 150), check_every=10, target_ert=1000)
    probs = [np.array([0.6, 0.3, 0.1]), np.array([0.35, 0.25, 0.2, 0.15, 0.05])]
    rng = np.random.default_rng(7)
    rows = opens = 0
    for _ in range(4):
        ref = np.column_stack([rng.choice(p.size, 2000, p=p) for p in probs])
        reference = Reference.from_rows(ref, ["a", "b"], categorical=["a", "b"])
        detector = DriftDetector(reference, config, tmp_path)
        stream = np.column_stack([rng.choice(p.size, 50_000, p=p) for p in probs])
        opens += _false_alarm_rate(detector, stream.astype(np.float32), config.check_every)
        rows += 50_000
    ert = rows / opens
    print(f"measured ERT {ert:.0f} over {rows} rows ({opens} false alarms)")
    assert ert == pytest.approx(config.target_ert, rel=0.25), (ert, opens)


def test_curve_threshold_is_monotone_in_target() -> None:
    shipped = sorted(SHIPPED_DIR.glob("ks-*.json"))
    assert shipped, "precomputed calibration for the default configuration is shipped"
    curves = [NullCurve.from_json(json.loads(path.read_text())) for path in shipped]
    # the iid curve of the default config (the fraud models' block-bootstrap one ships too)
    default = [c for c in curves if c.key == ks_key(DriftConfig(), 5000)]
    assert len(default) == 1
    curve = default[0]
    levels = [curve.threshold_for(d * 20_000) for d in (1, 9, 10, 11, 12, 20, 100)]
    assert levels == sorted(levels) and 1.8 < levels[0] < levels[-1] < 3.0


def test_default_detector_uses_shipped_calibration(tmp_path) -> None:
    rng = np.random.default_rng(0)
    reference = Reference.from_rows(rng.standard_normal((5000, 20)), [f"x{j}" for j in range(20)])
    DriftDetector(reference, calibration_cache=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing simulated, nothing cached
    calibrator = Calibrator(tmp_path)
    assert calibrator.ks_threshold(DriftConfig(), 5000, 20) == pytest.approx(2.37, abs=0.03)


def _ar1(rng: np.random.Generator, rows: int, d: int, phi: float = 0.5) -> np.ndarray:
    noise = rng.standard_normal((rows, d)) * np.sqrt(1 - phi * phi)
    out = np.empty((rows, d))
    out[0] = rng.standard_normal(d)
    for t in range(1, rows):
        out[t] = phi * out[t - 1] + noise[t]
    return out.astype(np.float32)


def test_block_bootstrap_calibration_holds_its_ert_on_an_ar1_stream(tmp_path) -> None:
    # the reference is an AR(1) stretch in arrival order; iid calibration alarms far too often
    config = DriftConfig(windows=(50, 150), target_ert=2000)
    rng = np.random.default_rng(5)
    names = ["f0", "f1"]
    erts = {}
    for mode in ("iid", "block-bootstrap"):
        rows = opens = 0
        for _ in range(3):
            reference = Reference.from_rows(_ar1(rng, 4000, 2), names)
            detector = DriftDetector(reference, replace(config, calibration=mode), tmp_path)
            opens += _false_alarm_rate(detector, _ar1(rng, 60_000, 2), 256)
            rows += 60_000
        erts[mode] = rows / opens
        assert detector.calibration[0].startswith(mode)
    print(erts)
    assert erts["iid"] < 0.4 * config.target_ert  # the problem
    assert erts["block-bootstrap"] == pytest.approx(config.target_ert, rel=0.3), erts


def test_block_length_follows_the_measured_autocorrelation() -> None:
    rng = np.random.default_rng(1)
    independent = DependentNull.from_sample(rng.standard_normal((5000, 3)))
    dependent = DependentNull.from_sample(_ar1(rng, 5000, 3, phi=0.8))
    assert independent.block <= 2 < dependent.block
    assert "block-bootstrap(block=" in dependent.label
    with pytest.raises(ValueError, match="ordered sample of >= 500 rows"):
        DependentNull.from_sample(rng.standard_normal((100, 3)))
    with pytest.raises(ValueError, match="calibration 'bootstrap' is not one of"):
        DriftConfig(calibration="bootstrap")


def _sticky_codes(rng: np.random.Generator, rows: int, stay: float) -> np.ndarray:
    """Categories 0-2 (shares 0.5 / 0.3 / 0.2) that repeat the previous row's with `stay`."""
    fresh = rng.choice(3, size=rows, p=[0.5, 0.3, 0.2])
    keep = rng.random(rows) < stay
    out = fresh.copy()
    for t in range(1, rows):
        if keep[t]:
            out[t] = out[t - 1]
    return out


def test_a_categorical_feature_in_bursts_gets_a_block_bootstrap_null() -> None:
    rng = np.random.default_rng(3)
    assert CategoricalNull.from_codes(rng.choice(3, 5000, p=[0.5, 0.3, 0.2])) is None
    null = CategoricalNull.from_codes(_sticky_codes(rng, 5000, 0.7) + 10)  # any code values
    assert null is not None and null.block > 2 and null.categories == 3
    counts, codes = null.draw(np.random.default_rng(0), 4, 5000, 1200)
    assert counts.shape == (4, 3) and (counts.sum(axis=1) == 5000).all()
    assert codes.shape == (4, 1200) and set(np.unique(codes)) <= {0, 1, 2}
    # blocks keep the bursts: a resample repeats its previous code about as often as the sample
    sample = np.mean(null.codes[1:] == null.codes[:-1])
    assert np.mean(codes[:, 1:] == codes[:, :-1]) == pytest.approx(sample, abs=0.05)
    with pytest.raises(ValueError, match="ordered sample of >= 500 rows"):
        CategoricalNull.from_codes(np.zeros(100))


def test_block_bootstrap_calibrates_a_categorical_feature_in_bursts(tmp_path) -> None:
    # one feature repeats its category in bursts, the other is independent: only the first
    # gets the block bootstrap, and its threshold is higher (its windows are noisier)
    config = DriftConfig(windows=(50, 150), target_ert=2000, calibration="block-bootstrap")
    rng = np.random.default_rng(11)
    rows = np.column_stack(
        [_sticky_codes(rng, 4000, 0.6), rng.choice(3, 4000, p=[0.5, 0.3, 0.2])]
    )
    reference = Reference.from_rows(rows, ["bursty", "calm"], categorical=["bursty", "calm"])
    detector = DriftDetector(reference, config, tmp_path)
    assert detector.calibration[0].startswith("block-bootstrap(block=")
    assert detector.calibration[1] == "iid"
    iid = DriftDetector(reference, replace(config, calibration="iid"), tmp_path)
    assert detector.thresholds[0] > 1.2 * iid.thresholds[0]
    assert detector.thresholds[1] == iid.thresholds[1]
    assert list(tmp_path.glob("g-*.json"))
