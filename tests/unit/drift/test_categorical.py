import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from pipeline.drift import DriftConfig, DriftDetector, DriftTest, Reference
from pipeline.drift.categorical import TABLE_CELLS_BELOW, GTable, g_test


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


def _window_counts(rng: np.random.Generator, d: int, checks: int, cells: int, width: int):
    counts = np.zeros((d, checks, cells), dtype=np.int64)
    for i in range(d):
        for c in range(checks):
            share = rng.dirichlet(np.ones(cells) * rng.choice([0.05, 1.0, 20.0]))
            counts[i, c] = rng.multinomial(width, share)
    counts[0, 0] = 0
    counts[0, 0, 0] = width  # everything in one category
    return counts


@pytest.mark.parametrize("cells", [2, 3, 5, TABLE_CELLS_BELOW - 1])
def test_table_g_test_is_bit_for_bit_g_test(cells: int) -> None:
    rng = np.random.default_rng([8, cells])
    for trial in range(40):
        d, width = int(rng.integers(1, 6)), int(rng.integers(2, 400))
        ref = rng.integers(0, 60, (d, cells)).astype(float)
        ref[:, -1] = 0  # the unseen bucket
        if trial % 4 == 0:
            ref[0] = 0.0
            ref[0, 0] = 50.0  # a constant reference feature
        table = GTable(ref, width)
        counts = _window_counts(rng, d, 9, cells, width)
        # as GWindows.checkpoints has them: int32, checks and categories transposed in memory
        laid_out = np.ascontiguousarray(counts.transpose(0, 2, 1), dtype=np.int32)
        laid_out = laid_out.transpose(0, 2, 1)
        for given in (counts, laid_out):
            g, js = table.evaluate(given)
            g0, js0 = g_test(ref[:, None, :], given.astype(float))
            np.testing.assert_array_equal(g, g0)
            np.testing.assert_array_equal(js, js0)
        g, js = table.evaluate(counts[:, 3])  # one window per feature
        g0, js0 = g_test(ref, counts[:, 3].astype(float))
        np.testing.assert_array_equal(g, g0)
        np.testing.assert_array_equal(js, js0)


def test_many_categories_keep_the_g_test_and_batching_does_not_matter(tmp_path) -> None:
    rng = np.random.default_rng(9)
    categories = np.arange(12.0)
    values = np.column_stack([rng.standard_normal(2000), rng.choice(categories, 2000)])
    reference = Reference.from_rows(values, ["amount", "shop"], categorical=["shop"])
    config = DriftConfig(windows=(50, 200), target_ert=3000)
    stream = np.column_stack([rng.standard_normal(3000), rng.choice(categories, 3000)])
    stream[1500:, 1] = rng.choice(categories[:4], 1500)
    by_ten, at_once = (DriftDetector(reference, config, tmp_path) for _ in range(2))
    assert at_once._g._tables == {}  # 13 cells: sums would not be g_test's, so no table
    index = np.arange(3000)
    expected = [
        event
        for start in range(0, 3000, 10)
        for event in by_ten.update(
            stream[start : start + 10], index[start : start + 10], index[start : start + 10] * 5
        )
    ]
    assert any(e.feature == "shop" for e in expected)
    assert at_once.update(stream, index, index * 5) == expected
