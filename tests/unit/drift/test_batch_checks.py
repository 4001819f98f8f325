"""Checks run every K rows inside a batch: decisions do not depend on how rows are batched."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.drift import AlertState, DriftConfig, DriftDetector, Reference
from pipeline.drift.ks import NumericIndex, ks_distance
from pipeline.drift.windows import KSWindows

THRESHOLDS = np.array([2.3, 2.3, 2.3, 3.0])  # fixed: this is about checking, not calibration


def _detector(tmp_path, **overrides) -> DriftDetector:
    rng = np.random.default_rng(21)
    values = rng.standard_normal((2000, 4))
    values[:, 3] = rng.integers(0, 3, 2000)  # a G-test feature too
    reference = Reference.from_rows(values, ["a", "b", "c", "d"])
    config = DriftConfig(windows=(50, 100, 300), **overrides)
    return DriftDetector(reference, config, tmp_path, thresholds=THRESHOLDS)


def _stream(rows: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(22)
    stream = rng.standard_normal((rows, 4)).astype(np.float32)
    stream[:, 3] = rng.integers(0, 3, rows)
    stream[1000:1400, 1] += 0.8  # opens, updates, resolves inside big batches
    stream[2100:2600, 3] = 2
    stream[3000:3300, 0] *= 1.8
    return stream


def _feed(detector: DriftDetector, rows: np.ndarray, batch: int) -> list:
    events = []
    for start in range(0, rows.shape[0], batch):
        index = np.arange(start, min(start + batch, rows.shape[0]))
        events += detector.update(rows[index], offsets=index, timestamps_ms=index * 7)
    return events


def test_one_batch_of_1000_alerts_exactly_as_100_batches_of_10(tmp_path) -> None:
    stream = _stream(1000)
    stream[300:, 1] += 1.0
    stream[600:700, 1] -= 1.0
    by_ten = _feed(_detector(tmp_path), stream, 10)
    at_once = _feed(_detector(tmp_path), stream, 1000)
    assert [e.state for e in by_ten if e.feature == "b"][:2] == [AlertState.OPEN, AlertState.UPDATE]
    assert at_once == by_ten  # every field: rows_seen, z, window, offsets, ranking...


@pytest.mark.parametrize("batch", [1, 7, 256, 1000, 2500])
def test_any_batching_gives_the_alerts_of_batches_of_k(tmp_path, batch: int) -> None:
    stream = _stream()
    expected = _feed(_detector(tmp_path), stream, 10)
    states = {e.state for e in expected}
    assert states == {AlertState.OPEN, AlertState.UPDATE, AlertState.RESOLVED}
    assert {e.feature for e in expected if e.state is AlertState.OPEN} >= {"a", "b", "d"}
    assert _feed(_detector(tmp_path), stream, batch) == expected


def test_persistence_counts_checks_inside_a_batch(tmp_path) -> None:
    stream = _stream()
    expected = _feed(_detector(tmp_path, persistence=3), stream, 10)
    assert any(e.state is AlertState.OPEN for e in expected)
    assert _feed(_detector(tmp_path, persistence=3), stream, 512) == expected
    # and an alert opens at the check where the streak completes, not at the batch end
    assert all(e.rows_seen % 10 == 0 for e in expected)


def test_checkpoint_values_are_exact_where_they_could_decide() -> None:
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((1500, 3)).astype(np.float32)
    index = NumericIndex.build(ref)
    widths = (40, 120, 400)
    windows = KSWindows(3, widths, 1500, index.distance, check_every=10)
    stream = rng.standard_normal((3000, 3)).astype(np.float32)
    stream[1800:, 2] += 0.4
    level = np.array([1.2, 1.5, 1.9])
    seen = 0
    for batch in (450, 600, 37, 1000, 913):
        chunk = stream[seen : seen + batch]
        windows.push(index.codes(chunk).T)
        ends = np.arange((seen // 10 + 1) * 10, seen + batch + 1, 10)
        z, dist = windows.checkpoints(ends, level)
        seen += batch
        for c, end in enumerate(ends):
            for k, width in enumerate(widths):
                if end < width:
                    assert not z[c, k].any()
                    continue
                for j in range(3):
                    exact = ks_distance(ref[:, j], stream[end - width : end, j])
                    scale = windows.scale[k]
                    if exact * scale >= level[j] or z[c, k, j] >= level[j]:
                        assert dist[c, k, j] == pytest.approx(exact, abs=1e-12)
                    else:  # a bound, and below the level: it decides the same way
                        assert exact <= dist[c, k, j] + 1e-12


def test_few_valued_features_alert_alike_in_any_batching(tmp_path) -> None:
    # 12 integer values: a KS feature whose in-batch values come from class counts
    rng = np.random.default_rng(31)
    values = np.column_stack([rng.integers(0, 12, 2000), rng.standard_normal(2000)])
    reference = Reference.from_rows(values, ["count", "amount"])
    config = DriftConfig(windows=(50, 100, 300))
    stream = np.column_stack([rng.integers(0, 12, 4000), rng.standard_normal(4000)])
    stream = stream.astype(np.float32)
    stream[1200:1700, 0] = rng.integers(2, 14, 500)  # shifted up, partly unseen values
    stream[2500:2900, 0] = 4.0

    def detector() -> DriftDetector:
        return DriftDetector(reference, config, tmp_path, thresholds=np.array([2.3, 2.3]))

    assert detector()._ks.class_series.tolist() == [True, False]
    expected = _feed(detector(), stream, 10)
    assert {e.state for e in expected if e.feature == "count"} == {
        AlertState.OPEN,
        AlertState.UPDATE,
        AlertState.RESOLVED,
    }
    for batch in (256, 1000, 4000):
        assert _feed(detector(), stream, batch) == expected


@pytest.mark.parametrize("kind", ["int64 codes", "categorical only"])
def test_wide_codes_and_categorical_only_alert_alike_in_any_batching(tmp_path, kind) -> None:
    rng = np.random.default_rng(41)
    if kind == "int64 codes":  # n_ref >= 2**15: codes are int64, ranks up to 40,000
        values = np.column_stack([rng.standard_normal(40_000), rng.integers(0, 9, 40_000)])
        stream = np.column_stack([rng.standard_normal(3000), rng.integers(0, 9, 3000)])
        stream[1000:1600] += 0.7
    else:
        values = rng.integers(0, 4, (2000, 2)).astype(float)
        stream = rng.integers(0, 4, (3000, 2)).astype(float)
        stream[1000:1600, 0] = rng.integers(0, 2, 600)
    reference = Reference.from_rows(values, ["p", "q"])
    config = DriftConfig(windows=(50, 100, 300))

    def detector() -> DriftDetector:
        return DriftDetector(reference, config, tmp_path, thresholds=np.array([2.3, 2.3]))

    expected = _feed(detector(), stream.astype(np.float32), 10)
    assert any(e.state is AlertState.OPEN for e in expected)
    for batch in (256, 3000):
        assert _feed(detector(), stream.astype(np.float32), batch) == expected


@pytest.mark.parametrize("every", [10, 30])
def test_checkpoints_at_any_set_of_ends_are_those_of_the_regular_run(every: int) -> None:
    """The regular run (strided prefix slices) and an irregular subset (gathered) agree.

    K = 30 with windows of multiples of 10: the prefix grain is 10, three grains a check.
    """
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((1500, 3)).astype(np.float32)
    index = NumericIndex.build(ref)
    widths = (40, 120, 400)
    stream = rng.standard_normal((1800, 3)).astype(np.float32)
    stream[900:, 1] += 0.5
    level = np.array([1.2, 1.5, 1.9])

    def windows() -> KSWindows:
        out = KSWindows(3, widths, 1500, index.distance, check_every=every)
        out.push(index.codes(stream[:800]).T)
        out.checkpoints(np.arange(every, 801, every), level)  # the prefix held so far
        out.push(index.codes(stream[800:]).T)
        return out

    ends = np.arange(-(-801 // every) * every, 1801, every)
    z, dist = windows().checkpoints(ends, level)
    assert (dist > 0).all() and (z[:, :, 1] >= level[1]).any()  # bounds and exact values
    picked = np.array([0, 1, 3, 4, 9, 20, ends.size - 1])
    some_z, some_dist = windows().checkpoints(ends[picked], level)
    np.testing.assert_array_equal(some_dist, dist[picked])
    np.testing.assert_array_equal(some_z, z[picked])
