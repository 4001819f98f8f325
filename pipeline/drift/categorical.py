"""Categorical features: G-test of homogeneity between window and reference category counts.

Categories are the distinct reference values of a feature; anything else falls into one extra
"unseen" bucket. z = sqrt(G) and the effect size is the Jensen-Shannon distance (base 2, in
[0, 1]) between the two frequency vectors. KS is never used here: on a handful of values its
null distribution is far from the continuous one the KS calibration assumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy
from scipy.stats import chi2

from pipeline.drift.ks import ordered_keys
from pipeline.drift.windows import CHUNK_ROWS, Ring

_LN2 = float(np.log(2.0))
# numpy sums fewer than 8 values in index order whatever the memory layout; from 8 on, a
# contiguous row is summed pairwise (8 partial sums), so `GTable`'s sums would no longer be
# bit for bit those of `g_test` on its (transposed) arrays: wider features keep `g_test`
TABLE_CELLS_BELOW = 8


def g_test(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample G statistic and Jensen-Shannon distance over the last axis (broadcasting)."""
    a = np.asarray(ref_counts, dtype=np.float64)
    b = np.asarray(win_counts, dtype=np.float64)
    n = a.sum(axis=-1)
    w = b.sum(axis=-1)
    t = a + b
    total = n + w
    # G = 2 * sum O ln(O/E) with E = row total * column total / N, expanded to avoid 0/0
    g = 2.0 * (
        xlogy(a, a).sum(axis=-1)
        + xlogy(b, b).sum(axis=-1)
        - xlogy(t, t).sum(axis=-1)
        - xlogy(n, n)
        - xlogy(w, w)
        + xlogy(total, total)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        p = a / np.expand_dims(np.where(n > 0, n, 1.0), -1)
        q = b / np.expand_dims(np.where(w > 0, w, 1.0), -1)
        mix = 0.5 * (p + q)
        safe = np.where(mix > 0, mix, 1.0)
        js = 0.5 * (xlogy(p, p / safe).sum(axis=-1) + xlogy(q, q / safe).sum(axis=-1))
    return np.maximum(g, 0.0), np.sqrt(np.clip(js / _LN2, 0.0, 1.0))


def g_p_value(g: float, ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    """Chi-square approximation of the G-test p-value; information only."""
    df = int(np.count_nonzero(np.asarray(ref_counts) + np.asarray(win_counts))) - 1
    return float(chi2.sf(g, df)) if df > 0 else 1.0


@dataclass(frozen=True, eq=False)
class CategoricalIndex:
    """Categories of each categorical feature: the distinct reference values plus 'unseen'."""

    n_ref: int
    keys: np.ndarray  # uint64 sorted: (j << 32) | ordered_keys(category value); + max sentinel
    starts: np.ndarray  # int64 (d,): first category of feature j in keys
    sizes: np.ndarray  # int64 (d,): categories of feature j (its unseen bucket is code sizes[j])
    ref_counts: np.ndarray  # float64 (d, width): reference counts; column sizes[j] is unseen (0)
    categories: tuple[np.ndarray, ...]  # float32 category values per feature

    @classmethod
    def build(cls, values: np.ndarray) -> CategoricalIndex:
        values = np.asarray(values, dtype=np.float32)
        n_ref, d = values.shape
        keys, starts, sizes, counts, cats = [], [], [], [], []
        position = 0
        for j in range(d):
            distinct, count = np.unique(ordered_keys(values[:, j]), return_counts=True)
            keys.append((np.uint64(j) << np.uint64(32)) | distinct.astype(np.uint64))
            starts.append(position)
            sizes.append(distinct.size)
            position += distinct.size
            counts.append(count)
            cats.append(np.unique(values[:, j]))
        width = (max(sizes) if sizes else 0) + 1
        ref_counts = np.zeros((d, width))
        for j, count in enumerate(counts):
            ref_counts[j, : count.size] = count
        keys.append(np.array([np.iinfo(np.uint64).max], dtype=np.uint64))  # above every query
        return cls(
            n_ref=n_ref,
            keys=np.concatenate(keys),
            starts=np.asarray(starts, dtype=np.int64),
            sizes=np.asarray(sizes, dtype=np.int64),
            ref_counts=ref_counts,
            categories=tuple(cats),
        )

    @property
    def n_features(self) -> int:
        return int(self.starts.size)

    @property
    def width(self) -> int:
        return int(self.ref_counts.shape[1])

    def codes(self, values: np.ndarray) -> np.ndarray:
        """(rows, d) float32 -> (rows, d) int32 category codes (sizes[j] = unseen)."""
        d = self.n_features
        high = np.arange(d, dtype=np.uint64) << np.uint64(32)
        query = ordered_keys(values).astype(np.uint64) | high
        found = np.searchsorted(self.keys, query)
        equal = self.keys[found] == query
        return np.where(equal, found - self.starts, self.sizes).astype(np.int32)


class GTable:
    """`g_test` of a fixed reference against full windows of one width, by table lookups.

    A window's counts are integers in [0, width], so every term `g_test` evaluates per cell
    (x ln x of a count, of count + reference count, and both Jensen-Shannon terms) is looked up
    in a table computed by `g_test`'s own expressions; the per-row sums add the same values in
    the same order (rows of fewer than TABLE_CELLS_BELOW cells), so the results are bit for
    bit those of `g_test`, without its ~25 array operations per call.
    """

    def __init__(self, ref_counts: np.ndarray, width: int) -> None:
        a = np.asarray(ref_counts, dtype=np.float64)  # (d, categories)
        d, cells = a.shape
        self.width = int(width)
        self._ref = a.astype(np.int64)[:, None, :]
        n = a.sum(axis=-1)[:, None]  # as g_test: (d, 1)
        w = float(self.width)
        top = int(self._ref.max(initial=0)) + self.width
        self._xlx = xlogy(np.arange(top + 1.0), np.arange(top + 1.0))
        self._ref_term = xlogy(a, a).sum(axis=-1)[:, None]
        self._n_term = xlogy(n, n)
        self._w_term = xlogy(w, w)
        self._total_term = xlogy(n + w, n + w)
        # Jensen-Shannon terms of each (feature, category, count): (d, categories, width + 1)
        b = np.arange(self.width + 1.0)[None, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            p_ref = (a / np.where(n > 0, n, 1.0))[:, :, None]
            q_win = b / w
            mix = 0.5 * (p_ref + q_win)
            safe = np.where(mix > 0, mix, 1.0)
            self._js_ref = xlogy(p_ref, p_ref / safe).ravel()
            self._js_win = xlogy(q_win, q_win / safe).ravel()
        self._cell_base = (
            np.arange(d)[:, None, None] * (cells * (self.width + 1))
            + np.arange(cells)[None, None, :] * (self.width + 1)
        )

    def evaluate(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(G, JS) of windows with integer `counts` (d, [checks,] categories) summing to width."""
        if counts.ndim == 2:  # one window per feature
            g, js = self.evaluate(counts[:, None, :])
            return g[:, 0], js[:, 0]
        counts = np.asarray(counts, dtype=np.int64)
        g = 2.0 * (
            self._ref_term
            + self._xlx[counts].sum(axis=-1)
            - self._xlx[counts + self._ref].sum(axis=-1)
            - self._n_term
            - self._w_term
            + self._total_term
        )
        cell = counts + self._cell_base
        js = 0.5 * (self._js_ref[cell].sum(axis=-1) + self._js_win[cell].sum(axis=-1))
        return np.maximum(g, 0.0), np.sqrt(np.clip(js / _LN2, 0.0, 1.0))


def window_counts(codes: np.ndarray, width: int) -> np.ndarray:
    """Category counts per row of a (series, w) code matrix -> (series, width)."""
    series = codes.shape[0]
    flat = (codes + (np.arange(series, dtype=np.int32) * width)[:, None]).ravel()
    return np.bincount(flat, minlength=series * width).reshape(series, width).astype(np.float64)


class GWindows:
    """G-test of the last w category codes of each categorical feature, for every window w."""

    def __init__(self, index: CategoricalIndex, windows: Sequence[int]) -> None:
        self.index = index
        self.windows = tuple(int(w) for w in windows)
        w_max = max(self.windows)
        self.ring = Ring(index.n_features, w_max + CHUNK_ROWS, np.int32, keep=w_max)
        # running category counts (column r: rows [origin, origin + r)), brought up to date by
        # `_sync_counts` when a batch has checks inside: only the new rows are counted
        self._counts = Ring(index.n_features * index.width, w_max + CHUNK_ROWS + 1, np.int32)
        self._counted = -1  # rows folded into the running counts; -1: nothing yet
        self._tables = (
            {w: GTable(index.ref_counts, w) for w in self.windows}
            if index.width < TABLE_CELLS_BELOW
            else {}
        )

    @property
    def rows_seen(self) -> int:
        return self.ring.written

    def push(self, codes: np.ndarray) -> None:
        self.ring.push(codes)

    def counts(self, width: int, end: int | None = None) -> np.ndarray:
        end = self.rows_seen if end is None else end
        return window_counts(self.ring.ending(end, width), self.index.width)

    def exact_at(self, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(z, JS) of every window ending at row `end`, each (windows, features)."""
        n_w, d = len(self.windows), self.index.n_features
        z, js = np.zeros((n_w, d)), np.zeros((n_w, d))
        for k, width in enumerate(self.windows):
            if end >= width and d:
                g, js[k] = g_test(self.index.ref_counts, self.counts(width, end))
                z[k] = np.sqrt(g)
        return z, js

    def checkpoints(self, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, JS) at each check ending at row `ends[c]` (pushed already), (checks, windows, d).

        Window counts come from cumulative category counts over the rows the checks span, so
        every check of a batch costs one subtraction per category (no per-check bincount).
        """
        ends = np.asarray(ends, dtype=np.int64)
        n_w, d = len(self.windows), self.index.n_features
        z = np.zeros((ends.size, n_w, d))
        js = np.zeros_like(z)
        if not ends.size or not d:
            return z, js
        seen = self.rows_seen
        start = max(int(ends[0]) - max(self.windows), 0, seen - self.ring.capacity)
        self._sync_counts()
        width = self.index.width
        origin = self._counted - (self._counts.written - 1)  # the row of column 0
        if start < origin:
            raise AssertionError("a check reaches back before the rows still held")
        columns = seen - start + 1
        cumulative = self._counts.last(columns).reshape(d, width, columns)
        for k, w in enumerate(self.windows):
            full = ends >= w
            if not full.any():
                continue
            stop = ends[full] - start
            counts = (cumulative[:, :, stop] - cumulative[:, :, stop - w]).transpose(0, 2, 1)
            g, dist = self._g_test(w, counts)  # counts (d, checks, width)
            z[full, k] = np.sqrt(g).T
            js[full, k] = dist.T
        return z, js

    def _g_test(self, width: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`g_test` of full windows of `width` rows, by the table where there is one."""
        table = self._tables.get(width)
        if table is None:
            ref = self.index.ref_counts
            return g_test(ref if counts.ndim == 2 else ref[:, None, :], counts)
        return table.evaluate(counts)

    def _sync_counts(self) -> None:
        """Fold the rows pushed since the last sync into the running category counts."""
        d, width = self.index.n_features, self.index.width
        done, held = self._counted, self.ring.oldest()
        if done < held:  # first use, a restore, or more rows than the ring holds went by
            self._counts.written = 0
            self._counts.push(np.zeros((d * width, 1), dtype=np.int32))
            done = held
        new = self.ring.written - done
        if new > 0:
            codes = self.ring.ending(self.ring.written, new)
            counts = np.empty((d, width, new), dtype=np.int32)
            for category in range(width):
                np.cumsum(codes == category, axis=1, out=counts[:, category])
            counts += self._counts.last(1).reshape(d, width, 1)
            self._counts.push(counts.reshape(d * width, new))
        self._counted = self.ring.written

    def evaluate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z = sqrt(G), JS distance, G) per window and feature; zeros while a window fills."""
        n_w, d = len(self.windows), self.index.n_features
        z = np.zeros((n_w, d))
        js = np.zeros((n_w, d))
        g = np.zeros((n_w, d))
        for k, width in enumerate(self.windows):
            if self.rows_seen < width or d == 0:
                continue
            g[k], js[k] = self._g_test(width, self.counts(width))
            z[k] = np.sqrt(g[k])
        return z, js, g
