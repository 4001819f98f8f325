"""The rank grid gives exactly the searchsorted codes: ties, extremes, signed zeros, any layout."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.drift.ks import GRID_FROM_VALUES, NumericIndex, code_dtype, code_shift
from pipeline.drift.rank_grid import LINEAR_WINDOW, RankGrid


def _reference(kind: str, rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    if kind == "normal":
        values = rng.standard_normal((n, d))
    elif kind == "few values":  # cells of one repeated value: resolved by one comparison
        values = rng.integers(0, 7, (n, d)).astype(float)
    elif kind == "clustered":  # distinct values crowding one cell: the binary search
        values = rng.random((n, d)) * 1e-3
        values[0] = 1e6
    elif kind == "mixed":  # tied, clustered and smooth features side by side
        values = rng.standard_normal((n, d))
        values[:, ::3] = rng.integers(0, 4, (n, len(range(0, d, 3))))
        values[:, 1::3] = rng.random((n, len(range(1, d, 3)))) * 1e-3
        values[0, 1::3] = 1e6
    elif kind == "heavy tail":
        values = np.exp(3 * rng.standard_normal((n, d)))
    elif kind == "rounded with zeros":
        values = np.round(rng.standard_normal((n, d)), 1)
        values[:, 0] = 0.0
    else:  # tiny span
        values = rng.standard_normal((n, d)) * 1e-30
    return values.astype(np.float32)


def _grid_codes(index: NumericIndex, values: np.ndarray) -> np.ndarray:
    """The grid's codes whatever the batch size (`codes` takes it from GRID_FROM_VALUES on)."""
    assert index.grid is not None
    return index.grid.codes(values, code_shift(index.n_ref), code_dtype(index.n_ref))


def _queries(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, d = reference.shape
    spread = float(np.abs(reference).max()) + 1.0
    extremes = np.array([np.inf, -np.inf, -0.0, 0.0, 3e38, -3e38], dtype=np.float32)
    return np.concatenate(
        [
            reference[rng.integers(0, n, 300)],  # exact reference values: ties counted
            (rng.standard_normal((300, d)) * spread).astype(np.float32),
            np.repeat(extremes[:, None], d, axis=1),
        ]
    ).astype(np.float32)


@pytest.mark.parametrize(
    "kind",
    ["normal", "few values", "clustered", "mixed", "heavy tail", "rounded with zeros", "tiny span"],
)
def test_grid_codes_equal_searchsorted_codes(kind: str) -> None:
    rng = np.random.default_rng([5, len(kind)])
    for n, d in [(1, 1), (7, 3), (500, 4), (5000, 6)]:
        index = NumericIndex.build(_reference(kind, rng, n, d))
        assert index.grid is not None
        queries = _queries(index.sorted_ref.T, rng)
        with np.errstate(all="raise"):
            codes = _grid_codes(index, queries)
        np.testing.assert_array_equal(codes, index.searched_codes(queries))
        np.testing.assert_array_equal(index.codes(queries), codes)


def test_both_in_cell_searches_are_exercised() -> None:
    rng = np.random.default_rng(3)
    normal = RankGrid.build(_reference("normal", rng, 5000, 2))
    assert normal.window <= LINEAR_WINDOW
    assert RankGrid.build(_reference("clustered", rng, 5000, 2)).window > LINEAR_WINDOW
    # a repeated value fills its cell (thousands of copies) without forcing the binary search
    few = RankGrid.build(_reference("few values", rng, 5000, 2))
    assert few.uniform.sum() == 14 and few.window <= LINEAR_WINDOW


def test_column_subsets_and_strided_batches_are_ranked_like_contiguous_ones() -> None:
    rng = np.random.default_rng(4)
    index = NumericIndex.build(rng.standard_normal((3000, 3)).astype(np.float32))
    wide = rng.standard_normal((64, 5)).astype(np.float32)
    for batch in (wide[:, [0, 2, 4]], wide[::3, 1:4], wide[:, [4, 1, 0]].T.copy().T):
        np.testing.assert_array_equal(_grid_codes(index, batch), index.searched_codes(batch))
    big = np.repeat(wide, 1 + GRID_FROM_VALUES // wide.size, axis=0)[:, [3, 0, 1]]
    np.testing.assert_array_equal(index.codes(big), index.searched_codes(big))


def test_non_finite_references_and_nan_queries_take_the_searchsorted_path() -> None:
    rng = np.random.default_rng(6)
    reference = rng.standard_normal((400, 2)).astype(np.float32)
    assert NumericIndex.build(reference).grid is not None
    reference[3, 1] = np.inf
    assert NumericIndex.build(reference).grid is None
    index = NumericIndex.build(reference[:, :1])
    queries = rng.standard_normal((50, 1)).astype(np.float32)
    queries[7, 0] = np.nan
    np.testing.assert_array_equal(index.codes(queries), index.searched_codes(queries))


def test_a_big_reference_gets_a_bounded_table_and_stays_exact(monkeypatch) -> None:
    import pipeline.drift.rank_grid as rank_grid

    monkeypatch.setattr(rank_grid, "MAX_TABLE_CELLS", 3000)  # as if the reference were huge
    rng = np.random.default_rng(8)
    index = NumericIndex.build(rng.standard_normal((5000, 3)).astype(np.float32))
    assert index.grid is not None and index.grid.table.size <= 3000 + 3
    assert index.grid.window > LINEAR_WINDOW  # a few cells hold many values: binary search
    queries = _queries(index.sorted_ref.T, rng)
    np.testing.assert_array_equal(_grid_codes(index, queries), index.searched_codes(queries))


@pytest.mark.parametrize("n", [16_383, 16_384, 40_000])
def test_wide_table_entries_and_int64_codes_stay_exact(n: int) -> None:
    # from 2^14 reference rows the packed entries need uint32; from 2^15 codes are int64
    rng = np.random.default_rng([9, n])
    reference = np.concatenate(
        [_reference("normal", rng, n, 2), _reference("mixed", rng, n, 3)], axis=1
    )
    index = NumericIndex.build(reference)
    assert index.grid is not None
    assert index.grid.table.dtype == (np.uint16 if n < 2**14 else np.uint32)
    queries = _queries(index.sorted_ref.T, rng)
    codes = _grid_codes(index, queries)
    assert codes.dtype == code_dtype(n)
    np.testing.assert_array_equal(codes, index.searched_codes(queries))


def test_repeated_values_sharing_a_cell_with_others_count_their_ties() -> None:
    # a cell of two distinct values, 3 and 2 copies (the linear in-cell count, not one value)
    rng = np.random.default_rng(10)
    reference = rng.standard_normal((5000, 2)).astype(np.float32)
    one, above_one = np.float32(1.0), np.nextafter(np.float32(1.0), np.float32(2.0))
    reference[:3], reference[3:5] = one, above_one
    index = NumericIndex.build(reference)
    assert index.grid is not None and index.grid.window <= LINEAR_WINDOW
    tied = np.repeat(np.array([[one], [above_one], [np.nextafter(one, np.float32(0))]]), 2, 1)
    queries = np.concatenate([tied, _queries(reference, rng)]).astype(np.float32)
    codes = _grid_codes(index, queries)
    assert (codes[:2] & 0xFFFF).tolist() == [[3, 3], [2, 2]]
    np.testing.assert_array_equal(codes, index.searched_codes(queries))
