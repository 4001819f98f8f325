"""The windows' building blocks: the in-place running sum and the time-major ring."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.drift.ks import NumericIndex, ks_distance
from pipeline.drift.windows import (
    CLASS_VALUES_MAX,
    KSWindows,
    TimeRing,
    bucket_tops,
    running_sum,
)


@pytest.mark.parametrize("shape", [(1,), (2, 1, 3), (26, 48, 20), (5, 7, 33), (17, 3)])
def test_running_sum_is_cumsum_on_every_axis(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    values = rng.integers(-(2**31), 2**31 - 1, shape, dtype=np.int64).astype(np.int32)
    for axis in range(len(shape)):
        summed = values.copy()
        with np.errstate(over="ignore"):
            running_sum(summed, axis)
            expected = np.cumsum(values, axis=axis, dtype=np.int32)  # int32 wraps alike
        np.testing.assert_array_equal(summed, expected)


def test_time_ring_keeps_the_newest_entries_in_order() -> None:
    rng = np.random.default_rng(3)
    ring = TimeRing((4, 2), capacity=9)
    pushed = np.zeros((0, 4, 2), dtype=np.int32)
    for count in (1, 3, 8, 2, 9, 14, 5, 0, 7):
        entries = rng.integers(0, 1000, (count, 4, 2)).astype(np.int32)
        ring.push(entries)
        pushed = np.concatenate([pushed, entries])
        assert ring.written == pushed.shape[0]
        for width in range(1, min(ring.written, 9) + 1):
            np.testing.assert_array_equal(ring.last(width), pushed[-width:])


def _few_valued(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Columns: 12 integer values, 23 values (the most that get class buckets), 1 value, 24."""
    return np.column_stack(
        [
            rng.integers(0, 12, rows),
            rng.integers(0, CLASS_VALUES_MAX, rows),
            np.full(rows, 3.0),
            rng.integers(0, CLASS_VALUES_MAX + 1, rows),
        ]
    ).astype(np.float32)


def test_class_buckets_give_the_exact_distance_at_every_check() -> None:
    rng = np.random.default_rng(11)
    ref = _few_valued(rng, 3000)
    index = NumericIndex.build(ref)
    widths = (30, 100, 400)
    windows = KSWindows(
        4,
        widths,
        3000,
        index.distance,
        tops=bucket_tops(3000, *index.rank_table(), 4),
        check_every=10,
        rank_table=index.rank_table(),
    )
    assert windows.class_series.tolist() == [True, True, True, False]
    stream = _few_valued(rng, 2500)
    stream[900:1400, 0] = rng.integers(3, 14, 500)  # unseen values above the reference
    stream[::7, 1] += 0.5  # between reference values
    stream[::11, 2] = rng.choice([np.nan, -np.inf, np.inf, 2.0, 3.0, 1e30], stream[::11].shape[0])
    stream[1500:, 1] = 5.0
    seen, everything = 0, np.full(4, 1e9)  # a level nothing reaches: bounds except the classes
    for batch in (300, 413, 1000, 787):
        chunk = stream[seen : seen + batch]
        windows.push(index.codes(chunk).T)
        ends = np.arange((seen // 10 + 1) * 10, seen + batch + 1, 10)
        _, dist = windows.checkpoints(ends, everything)
        seen += batch
        for c, end in enumerate(ends):
            for k, width in enumerate(widths):
                if end < width:
                    continue
                for j in range(4):
                    exact = ks_distance(ref[:, j], stream[end - width : end, j])
                    if j < 3:  # bit for bit the sorted computation
                        assert dist[c, k, j] == exact, (end, width, j)
                    else:
                        assert dist[c, k, j] >= exact - 1e-12


def _bucket_bounds_side_by_side(windows: KSWindows, upto: np.ndarray, width: int) -> np.ndarray:
    """The bound's candidate gaps written out one by one (the formula `bucket_bounds` runs)."""
    n = windows.n_ref
    scaled = upto.astype(np.int64) * n
    edges = windows._edges_w[width].astype(np.int64)
    tops = windows._tops_w[width].astype(np.int64)
    down = scaled - edges
    up = tops[:, 1:] - scaled[:, :, :-1]
    first = np.broadcast_to(tops[:, 0], scaled.shape[:2])[:, :, None]
    return np.concatenate([down, up, first], axis=2).max(axis=2) / float(n * width)


def test_bucket_bounds_match_the_gaps_written_out() -> None:
    """Flat-loop bucket bound == the gaps one by one, for plain and class series, any checks."""
    rng = np.random.default_rng(23)
    widths = (30, 60, 120)
    smooth = rng.standard_normal(2000).astype(np.float32)
    smooth[::9] = np.round(smooth[::9])  # ties
    smooth[:3] = [np.inf, -np.inf, 0.0]
    ref = np.column_stack([smooth, _few_valued(rng, 2000)[:, :2]]).astype(np.float32)
    ref[::13, 0] = np.nan
    index = NumericIndex.build(ref)
    windows = KSWindows(
        3,
        widths,
        2000,
        index.distance,
        tops=bucket_tops(2000, *index.rank_table(), 3),
        check_every=10,
        rank_table=index.rank_table(),
    )
    assert windows.class_series.tolist() == [False, True, True]
    buckets = windows._edges_w[widths[0]].shape[1]
    for checks in (1, 7, 26, 3, 103, 40):  # growing, shrinking and growing again (the cache)
        for width in widths:
            # cumulative counts of windows of `width` values over the buckets
            cells = rng.dirichlet(np.ones(buckets) * 0.3, (checks, 3)) * width
            counts = np.diff(np.floor(np.cumsum(cells, axis=2)), prepend=0, axis=2)
            upto = np.cumsum(counts, axis=2).astype(np.int32)
            got = windows.bucket_bounds(upto, width)
            np.testing.assert_array_equal(got, _bucket_bounds_side_by_side(windows, upto, width))


@pytest.mark.parametrize("shift", [0.3, 10.0])
def test_bound_integers_widen_when_n_times_w_passes_int32(shift: float) -> None:
    """n = 48,000 and w = 45,000: the bound's integers (up to n w ~ 2.2e9) need int64; the
    bounds stay above the exact distance (a gap near n w wrapped negative in int32: D = 1)."""
    rng = np.random.default_rng(29)
    n, widths = 48_000, (100, 45_000)
    ref = rng.standard_normal((n, 1)).astype(np.float32)
    index = NumericIndex.build(ref)
    windows = KSWindows(
        1, widths, n, index.distance, tops=bucket_tops(n, *index.rank_table(), 1), check_every=10
    )
    assert windows._prefix.data.dtype == np.int64
    stream = (rng.standard_normal((45_020, 1)) + shift).astype(np.float32)
    windows.push(index.codes(stream).T)
    ends = np.array([45_000, 45_010, 45_020])
    _, dist = windows.checkpoints(ends, np.full(1, np.inf))  # bounds only
    for c, end in enumerate(ends):
        exact = ks_distance(ref[:, 0], stream[end - widths[1] : end, 0])
        assert exact <= dist[c, 1, 0] <= exact + 2 / 48  # the bound: a bucket's width above D
