"""Exact two-sample Kolmogorov-Smirnov distance computed from ranks in a fixed, sorted reference.

Every arriving value is turned once into an integer *code* that carries its place in the
reference: L = #ref < x and R = #ref <= x (searchsorted left and right), packed as
`L << shift | (R - L)`. Codes sort like the values they stand for (a value equal to a reference
value sorts after the gap below it and before the gap above it), so windows are just sorted
integer rows. The ECDF difference F_ref - F_win only changes at reference or window values, so
with the window sorted (position i, 0-based) the extremes are

    D+ = max_i  L_i / n - i / W        (just below the i-th window value)
    D- = max_i  (i + 1) / W - R_i / n  (at the i-th window value)

Ties inside the window need no care: for equal values the first copy maximises D+ and the last
maximises D-. Ties in the reference are carried by R - L. Everything is integer arithmetic on
(rows, W) arrays: no Python loop per row or per feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.stats import distributions

from pipeline.drift.rank_grid import RankGrid

_SIGN = np.uint32(0x80000000)
# numpy's quicksort for int32 rows is SIMD-fast up to ~512 elements and several times slower
# per element beyond; two sorted halves merged by the stable sort (timsort: one merge pass)
# is faster there.
_SPLIT_SORT_ABOVE = 512
# the rank grid's dozen array ops pay off from about this many values a batch; below, the one
# searchsorted costs less (10 rows x 20 features: 30 us against 44 us)
GRID_FROM_VALUES = 400


def ordered_keys(values: np.ndarray) -> np.ndarray:
    """float32 -> uint32 with the same order; -0.0 == +0.0 and every NaN above +inf."""
    x = np.asarray(values, dtype=np.float32) + np.float32(0.0)  # -0.0 + 0.0 is +0.0
    nan = np.isnan(x)
    if nan.any():
        x[nan] = np.nan  # one NaN bit pattern
    bits = x.view(np.uint32)
    # negative: flip all bits; positive: flip the sign bit (arithmetic shift spreads the sign)
    return bits ^ ((bits.view(np.int32) >> 31).view(np.uint32) | _SIGN)


def sort_rows(codes: np.ndarray) -> np.ndarray:
    """Sort each row of an int32 matrix (a copy)."""
    width = codes.shape[1]
    if width <= _SPLIT_SORT_ABOVE:
        return np.sort(codes, axis=1)
    half = width // 2
    out = np.empty_like(codes)
    out[:, :half] = np.sort(codes[:, :half], axis=1)
    out[:, half:] = np.sort(codes[:, half:], axis=1)
    out.sort(axis=1, kind="stable")
    return out


def code_shift(n_ref: int) -> int:
    """Bits below L in a code: int32 codes while L and R - L fit in 15 and 16 bits."""
    return 16 if n_ref < 2**15 else 32


def code_dtype(n_ref: int) -> type[np.signedinteger]:
    return np.int32 if code_shift(n_ref) == 16 else np.int64


def _work_dtype(n_ref: int, width: int) -> type[np.signedinteger]:
    # terms are at most n_ref * width in magnitude
    return np.int32 if (n_ref + 1) * (width + 1) < 2**31 else np.int64


_STEPS: dict[tuple[int, int], np.ndarray] = {}


def _steps(n_ref: int, width: int) -> np.ndarray:
    """i * n_ref for i < width, in the work dtype (cached: checks reuse a few widths)."""
    key = (n_ref, width)
    steps = _STEPS.get(key)
    if steps is None:
        dtype = _work_dtype(n_ref, width)
        steps = np.arange(width, dtype=dtype) * dtype(n_ref)
        steps.setflags(write=False)
        if len(_STEPS) < 256:
            _STEPS[key] = steps
    return steps


def ks_distance_sorted(sorted_codes: np.ndarray, n_ref: int) -> np.ndarray:
    """Exact KS distance of each row's window (sorted codes, see module doc) to its reference."""
    m, width = sorted_codes.shape
    if width == 0 or m == 0:
        return np.zeros(m)
    shift = code_shift(n_ref)
    i_n = _steps(n_ref, width)
    dtype = i_n.dtype.type
    u = (sorted_codes >> shift).astype(dtype, copy=False)  # L
    u *= width
    u -= i_n  # L*W - i*n
    d_plus = u.max(axis=1)
    ties = (sorted_codes & ((1 << shift) - 1)).astype(dtype, copy=False)  # R - L
    if ties.any():
        ties *= width
        u += ties  # R*W - i*n
    d_minus = n_ref - u.min(axis=1)
    return np.maximum(d_plus, d_minus).astype(np.float64) / (float(n_ref) * width)


def ks_scale(n_ref: int, width: int) -> float:
    """z = D * sqrt(n*W/(n+W)): the usual asymptotic normalisation of the two-sample KS."""
    return float(np.sqrt(n_ref * width / (n_ref + width)))


def ks_p_value(distance: float, n_ref: int, width: int) -> float:
    """Asymptotic two-sample p-value, as scipy's ks_2samp(method='asymp'); information only."""
    en = round(n_ref * width / (n_ref + width))
    return float(distributions.kstwo.sf(distance, max(en, 1)))


@dataclass(frozen=True, eq=False)
class NumericIndex:
    """The numeric features of a reference, prepared to turn values into codes."""

    n_ref: int
    keys: np.ndarray  # uint64 sorted: (j << 32) | ordered_keys(distinct value), + end of block
    base: np.ndarray  # code of a value just below each key: (#ref < key) << shift
    ties: np.ndarray  # #ref == key (0 for the end-of-block keys)
    tied: np.ndarray  # bool (d,): the feature's reference has repeated values
    sorted_ref: np.ndarray  # float32 (d, n_ref)
    mean: np.ndarray  # float64 (d,)
    std: np.ndarray  # float64 (d,)
    grid: RankGrid | None = None  # fast exact ranks (references with finite values only)

    @classmethod
    def build(cls, values: np.ndarray) -> NumericIndex:
        values = np.asarray(values, dtype=np.float32)
        n_ref, d = values.shape
        shift = code_shift(n_ref)
        dtype = code_dtype(n_ref)
        keys, base, ties, tied = [], [], [], []
        # above every ordered key of a real value (NaN is canonicalised to 0xFFC00000)
        end_key = np.uint64(0xFFFFFFFF)
        for j in range(d):
            distinct, counts = np.unique(ordered_keys(values[:, j]), return_counts=True)
            block = np.append(distinct.astype(np.uint64), end_key)
            keys.append((np.uint64(j) << np.uint64(32)) | block)
            below = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            base.append((below << shift).astype(dtype))
            ties.append(np.append(counts, 0).astype(dtype))
            tied.append(distinct.size < n_ref)
        finite = np.where(np.isfinite(values), values, np.nan).astype(np.float64)
        with np.errstate(all="ignore"):
            mean = np.nanmean(finite, axis=0) if n_ref else np.zeros(d)
            std = np.nanstd(finite, axis=0) if n_ref else np.ones(d)
        return cls(
            n_ref=n_ref,
            keys=np.concatenate(keys) if keys else np.zeros(0, np.uint64),
            base=np.concatenate(base) if base else np.zeros(0, dtype),
            ties=np.concatenate(ties) if ties else np.zeros(0, dtype),
            tied=np.asarray(tied, dtype=bool),
            sorted_ref=np.ascontiguousarray(np.sort(values, axis=0).T),
            mean=np.nan_to_num(mean),
            std=np.where(np.isfinite(std) & (std > 0), std, 1.0),
            grid=RankGrid.build(values),
        )

    @property
    def n_features(self) -> int:
        return int(self.tied.size)

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Codes of a batch (rows, d) float32 -> (rows, d): the rank grid, or one searchsorted."""
        values = np.asarray(values, dtype=np.float32)
        if (
            self.grid is not None
            and values.size >= GRID_FROM_VALUES
            and not np.isnan(values).any()
        ):
            return self.grid.codes(values, code_shift(self.n_ref), code_dtype(self.n_ref))
        return self.searched_codes(values)

    def searched_codes(self, values: np.ndarray) -> np.ndarray:
        """Codes by one searchsorted over every feature's keys (any values, NaN included)."""
        query = ordered_keys(values).astype(np.uint64)
        query |= self._high
        found = np.searchsorted(self.keys, query)  # never past feature j's end-of-block key
        code = self.base[found]
        equal = self.keys[found] == query
        if equal.any():
            code += np.where(equal, self.ties[found], 0).astype(code.dtype)
        return code

    @cached_property
    def _high(self) -> np.ndarray:
        return np.arange(self.n_features, dtype=np.uint64) << np.uint64(32)

    def rank_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feature, #ref < value, #ref == value) of every distinct reference value."""
        real = self.ties > 0  # the end-of-block keys carry no reference value
        feature = (self.keys[real] >> np.uint64(32)).astype(np.int64)
        below = (self.base[real] >> code_shift(self.n_ref)).astype(np.int64)
        return feature, below, self.ties[real].astype(np.int64)

    def distance(self, sorted_codes: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Exact D of sorted code windows (one row per entry of `features`)."""
        return ks_distance_sorted(sorted_codes, self.n_ref)


def ks_distance(reference: np.ndarray, window: np.ndarray) -> float:
    """Exact two-sample KS distance of two 1-D samples through the code path (tests, tools)."""
    index = NumericIndex.build(np.asarray(reference, dtype=np.float32)[:, None])
    codes = index.codes(np.asarray(window, dtype=np.float32)[:, None])[:, 0]
    return float(index.distance(sort_rows(codes[None, :]), np.zeros(1, dtype=np.int64))[0])
