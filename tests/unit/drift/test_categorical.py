import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from pipeline.drift import DriftConfig, DriftDetector, DriftTest, Reference
from pipeline.drift.categorical import g_test


def test_g_and_js_match_scipy() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        c = int(rng.integers(2, 7))
        a = rng.integers(0, 50, c).astype(float) + 1
        b = rng.integers(0, 30, c).astype(float)
        b[0] += 1
        g, js = g_test(a, b)
        expected = chi2_contingency(np.stack([a, b]), correction=False, lambda_="log-likelihood")
        assert g == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
        assert js == pytest.approx(jensenshannon(a / a.sum(), b / b.sum(), base=2), abs=1e-9)


def _reference(rng: np.random.Generator) -> Reference:
    values = np.column_stack(
        [
            rng.standard_normal(3000),  # numeric -> KS
            rng.integers(0, 3, 3000),  # few distinct values -> G
            rng.choice([3.0, 7.0, 11.0, 19.0, 23.0, 29.0, 31.0], 3000),  # declared categorical -> G
        ]
    )
    return Reference.from_rows(values, ["amount", "channel", "merchant"], categorical=["merchant"])


def test_categorical_and_few_valued_features_use_the_g_test(tmp_path) -> None:
    rng = np.random.default_rng(2)
    reference = _reference(rng)
    assert reference.tests() == (DriftTest.KS, DriftTest.G, DriftTest.G)
    config = DriftConfig(windows=(100, 300), target_ert=5000)
    detector = DriftDetector(reference, config, tmp_path)
    rows = np.column_stack(
        [
            rng.standard_normal(4000),
            rng.integers(0, 3, 4000),
            rng.choice([3.0, 7.0, 11.0, 19.0, 23.0, 29.0, 31.0], 4000),
        ]
    ).astype(np.float32)
    rows[2000:, 1] = np.where(rng.random(2000) < 0.5, 2, rows[2000:, 1])  # channel 2 surges
    rows[2000:, 2] = np.where(rng.random(2000) < 0.2, 99.0, rows[2000:, 2])  # unseen merchant
    events = []
    for start in range(0, 4000, 50):
        events += detector.update(rows[start : start + 50])
    opened = {e.feature: e for e in events if e.state == "OPEN" and e.rows_seen > 2000}
    assert {"channel", "merchant"} <= set(opened)
    for name in ("channel", "merchant"):
        event = opened[name]
        assert event.test is DriftTest.G
        assert 0 < event.statistic <= 1  # Jensen-Shannon distance
        assert event.mean_shift == 0.0 and event.wasserstein == 0.0
        assert event.z == pytest.approx(np.sqrt(event.z**2))
    stats = {s.feature: s for s in detector.stats()}
    assert stats["amount"].test is DriftTest.KS
    assert stats["channel"].test is DriftTest.G and stats["merchant"].test is DriftTest.G
