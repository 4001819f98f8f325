"""Sliding windows over a stream of per-feature codes: a ring buffer and lazily exact KS windows.

Checks run at every K-th row even inside a large batch (`KSWindows.checkpoints`): all the
batch's checkpoints are evaluated at once, each exact wherever its value could change a decision.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from pipeline.drift.ks import code_dtype, code_shift, ks_scale, sort_rows

# D of the windows' sorted codes for the given series (rows): (sorted_codes, series) -> D
DistanceFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Ring:
    """The last `capacity` columns of an (rows, time) stream.

    Every column is written twice, at p and p + capacity, so the most recent w columns are always
    one contiguous slice: windows are views, never gathered copies.
    """

    def __init__(
        self,
        rows: int,
        capacity: int,
        dtype: type | np.dtype,
        fill: object = 0,
        keep: int | None = None,
    ) -> None:
        self.capacity = int(capacity)
        # columns a snapshot saves: the spare room beyond `keep` only serves checks inside a
        # batch (windows ending before its last row), never the next batch
        self.keep = self.capacity if keep is None else min(int(keep), self.capacity)
        self.data = np.full((rows, 2 * self.capacity), fill, dtype=dtype)
        self.written = 0  # columns pushed since the start (not capped)
        self.valid_from = 0  # the oldest column number a restore brought back

    def push(self, columns: np.ndarray) -> None:
        count = columns.shape[1]
        cap = self.capacity
        if count >= cap:  # only the newest `cap` columns survive
            start = (self.written + count - cap) % cap
            tail = columns[:, count - cap :]
            first = cap - start
            self.data[:, start:cap] = tail[:, :first]
            self.data[:, :start] = tail[:, first:]
            self.data[:, cap:] = self.data[:, :cap]
        else:
            start = self.written % cap
            first = min(count, cap - start)
            self.data[:, start : start + first] = columns[:, :first]
            self.data[:, cap + start : cap + start + first] = columns[:, :first]
            rest = count - first
            if rest:
                self.data[:, :rest] = columns[:, first:]
                self.data[:, cap : cap + rest] = columns[:, first:]
        self.written += count

    def last(self, width: int) -> np.ndarray:
        """View of the newest `width` columns, oldest first (undefined before `width` writes)."""
        head = self.written % self.capacity + self.capacity
        return self.data[:, head - width : head]

    def ending(self, end: int, width: int) -> np.ndarray:
        """View of the `width` columns before column number `end` (end <= written)."""
        back = self.written - end
        if back == 0:
            return self.last(width)
        return self.last(width + back)[:, :width]

    def state(self) -> tuple[np.ndarray, int]:
        """Newest columns (up to `keep`), oldest first, and the total written."""
        return self.last(min(self.written, self.keep)).copy(), self.written

    def oldest(self) -> int:
        """Number of the oldest column still held."""
        return max(self.valid_from, self.written - self.capacity, 0)

    def restore(self, columns: np.ndarray, written: int) -> None:
        self.data[...] = 0
        self.written = written - columns.shape[1]
        self.push(columns)
        self.written = written
        self.valid_from = written - columns.shape[1]


def running_sum(values: np.ndarray, axis: int) -> None:
    """In-place inclusive cumulative sum along `axis` by log2(n) shifted additions.

    np.cumsum on integers is a scalar loop (~3 ns a value); here each pass is one vectorised
    add (fastest on the outermost axis: a few long contiguous runs), exactly the same sums.
    Two buffers in turn: an add whose output overlaps its input takes numpy's slow
    buffered path.
    """
    source = values if axis == 0 else np.moveaxis(values, axis, 0)  # moveaxis: ~5 us a call
    n = source.shape[0]
    target = np.empty_like(source)
    result = source
    shift = 1
    while shift < n:
        target[:shift] = source[:shift]
        np.add(source[shift:], source[:-shift], out=target[shift:])
        source, target = target, source
        shift *= 2
    if source is not result:
        result[...] = source


class TimeRing:
    """The last `capacity` entries of a stream of (shape) blocks, time as the first axis.

    Like Ring (every entry written twice, so the newest ones are always one slice), but
    time-major: entry t is one contiguous block, and a gather of entries copies whole blocks.
    """

    def __init__(
        self, shape: tuple[int, ...], capacity: int, dtype: type[np.signedinteger] = np.int32
    ) -> None:
        self.capacity = int(capacity)
        self.data = np.zeros((2 * self.capacity, *shape), dtype=dtype)
        self.written = 0

    def push(self, entries: np.ndarray) -> None:
        count, cap = entries.shape[0], self.capacity
        if count >= cap:
            entries = entries[count - cap :]
            start = (self.written + count - cap) % cap
            first = cap - start
            self.data[start:cap] = entries[:first]
            self.data[:start] = entries[first:]
            self.data[cap:] = self.data[:cap]
        else:
            start = self.written % cap
            first = min(count, cap - start)
            self.data[start : start + first] = entries[:first]
            self.data[cap + start : cap + start + first] = entries[:first]
            rest = count - first
            if rest:
                self.data[:rest] = entries[first:]
                self.data[cap : cap + rest] = entries[first:]
        self.written += count

    def last(self, count: int) -> np.ndarray:
        """View of the newest `count` entries, oldest first."""
        head = self.written % self.capacity + self.capacity
        return self.data[head - count : head]


# Rows a batch is cut into before its checks run: rings keep this much room beyond the largest
# window, so every window ending inside the piece is a contiguous view (no copy).
CHUNK_ROWS = 1024
# Equal-frequency reference buckets behind the bound on D inside a batch: each adds ~1/B to
# the bound (so null windows stay well under any alarm level) and costs one count per check.
BUCKETS = 48
# distinct reference values up to which a series' buckets are its value classes (2K + 1 <= B)
CLASS_VALUES_MAX = (BUCKETS - 1) // 2


def bucket_tops(n_ref: int, feature: np.ndarray, below: np.ndarray, ties: np.ndarray, d: int):
    """Largest #ref <= x per (feature, bucket) over values x whose #ref < x falls in the bucket.

    `feature`, `below` (#ref < value) and `ties` (#ref == value) describe each distinct
    reference value; values between reference values add at most the bucket's last rank.
    """
    cuts = -(-(np.arange(BUCKETS + 1) * (n_ref + 1)) // BUCKETS)
    tops = np.broadcast_to(cuts[1:] - 1, (d, BUCKETS)).astype(np.int64)
    bucket = np.asarray(below, dtype=np.int64) * BUCKETS // (n_ref + 1)
    np.maximum.at(tops, (np.asarray(feature, dtype=np.int64), bucket), below + ties)
    return np.minimum(tops, n_ref)


class KSWindows:
    """Exact KS distances of the last w codes of m series to their references, for each w.

    A check only needs the exact D where it can change a decision. Replacing r of a window's w
    values moves its ECDF by at most r/w anywhere, so |D_now - D_then| <= min(r, w)/w. A window
    whose bound z_then + that shift stays below the caller's `level` is not recomputed: its bound
    is returned instead and it provably cannot cross `level`. Decisions are therefore the same as
    with an exact evaluation every check; only the work differs.
    """

    def __init__(
        self,
        series: int,
        windows: Sequence[int],
        n_ref: int,
        distance: DistanceFn,
        tops: np.ndarray | None = None,
        check_every: int = 1,
        rank_table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """`rank_table`: (series, #ref < value, #ref == value) of each distinct reference value
        (NumericIndex.rank_table); a series with at most CLASS_VALUES_MAX of them gets buckets
        that make its in-batch bound its exact D (see `_class_buckets`)."""
        self.windows = tuple(int(w) for w in windows)
        self.n_ref = int(n_ref)
        self.series = int(series)
        w_max = max(self.windows)
        self.ring = Ring(series, w_max + CHUNK_ROWS, code_dtype(self.n_ref), keep=w_max)
        self.scale = np.array([ks_scale(self.n_ref, w) for w in self.windows])
        self._widths = np.array(self.windows, dtype=np.int64)
        self._distance = distance
        # bucket b holds reference ranks L in [edges_b * n, edges_b+1 * n) (see bucket_bounds)
        cuts = -(-(np.arange(BUCKETS + 1) * (self.n_ref + 1)) // BUCKETS)
        if tops is None:  # no ties: #ref <= x is at most L + 1 <= the next bucket's first rank
            tops = np.broadcast_to(cuts[1:], (self.series, BUCKETS))
        tops = np.minimum(np.asarray(tops, dtype=np.int64), self.n_ref).T.copy()  # (B, series)
        edges = np.repeat(cuts[:-1, None], self.series, axis=1)  # (B, series)
        # bucket of a reference rank L: one lookup per value (class series: `_class_levels`)
        ranks = np.arange(self.n_ref + 1) * BUCKETS // (self.n_ref + 1)
        self.class_series = np.zeros(self.series, dtype=bool)
        self._class_levels: dict[int, np.ndarray] = {}  # series -> its b_0 .. b_K
        if rank_table is not None:
            self._class_buckets(rank_table, edges, tops)
        self._plain_series = ~self.class_series  # series whose bound may need an exact D
        # the bound's integers reach n w: int32 while that fits (int64 beyond, a big reference)
        self._bound_dtype = np.int32 if (self.n_ref + 1) * (w_max + 1) < 2**31 else np.int64
        # bucket edges and tops times each window width, in units of 1 / (n w): (series, B)
        self._edges_w = {
            w: np.ascontiguousarray(edges.T * w, dtype=self._bound_dtype) for w in self.windows
        }
        self._tops_w = {
            w: np.ascontiguousarray(tops.T * w, dtype=self._bound_dtype) for w in self.windows
        }
        self._bucket_of = ranks.astype(np.intp)
        self._tiled: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # see _tiled_bucket_limits
        self._offsets: dict[int, np.ndarray] = {}  # see _cut_row_offsets
        self._row_starts: dict[int, np.ndarray] = {}  # see _bucket_row_starts
        self.grain = math.gcd(int(check_every), *self.windows)
        # cumulative bucket counts per grain times n, kept up to date lazily by `_sync_prefix`
        # (only batches with checks inside need them): entry t is n x the counts of rows
        # [origin, origin + t grains), time-major (t, series, B): a check's counts are one
        # contiguous block, and the bound's maxima over buckets run along contiguous rows.
        # Times n once here rather than once per window and check in `bucket_bounds`.
        self._prefix = TimeRing(
            (self.series, BUCKETS), (w_max + CHUNK_ROWS) // self.grain + 2, self._bound_dtype
        )
        self._prefix_origin = 0
        self._prefix_rows = -1  # rows folded in (absolute row number); -1: nothing yet
        self.forget_bounds()

    def _class_buckets(
        self,
        rank_table: tuple[np.ndarray, np.ndarray, np.ndarray],
        edges: np.ndarray,
        tops: np.ndarray,
    ) -> None:
        """Buckets of a few-valued series: one per class of value, so its bound is exact.

        With K distinct reference values v_k (b_k = #ref < v_k, b_K = n), a value is in class
        2k (between v_k-1 and v_k: L = b_k, no tie) or 2k+1 (equal to v_k: L = b_k, a tie).
        F_ref is constant on a class, r_c / n at its top (r_2k = b_k, r_2k+1 = b_k+1), and F_win
        runs from C_c-1 / w to C_c / w (C: the window's cumulative class counts), so
        D n w = max_c |r_c w - C_c n|: `bucket_bounds` with edge_c = r_c and top_c+1 = r_c,
        the very integers ks_distance_sorted maximises.
        """
        feature, below, _ = (np.asarray(a, dtype=np.int64) for a in rank_table)
        n = self.n_ref
        for j in range(self.series):
            b = below[feature == j]  # ascending, b_0 = 0
            k = b.size
            if not 0 < k <= CLASS_VALUES_MAX:
                continue
            b = np.append(b, n)
            top = np.repeat(b, 2)[1:]  # r_c for c = 0 .. 2K
            classes = top.size
            edges[:classes, j], edges[classes:, j] = top, n
            tops[0, j], tops[1 : classes + 1, j], tops[classes + 1 :, j] = 0, top, n
            self._class_levels[j] = b  # L = b_k: class 2k; a tie adds 1 (`_grain_counts`)
            self.class_series[j] = True

    @property
    def rows_seen(self) -> int:
        return self.ring.written

    def forget_bounds(self) -> None:
        """Force exact evaluation everywhere at the next check (after restore or a reset)."""
        shape = (len(self.windows), self.series)
        self._last_d = np.ones(shape)
        self._last_at = np.full(shape, -(10**12), dtype=np.int64)

    def push(self, codes: np.ndarray) -> None:
        """Append codes given as (series, rows)."""
        self.ring.push(codes)

    def evaluate(self, level: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z, D, exact) per window and series, each (windows, series).

        z and D are exact where `exact`; elsewhere they are upper bounds with z < level. Windows
        that are not full yet give z = D = 0 and exact = False.
        """
        seen = self.rows_seen
        full = self._widths <= seen
        moved = np.minimum(seen - self._last_at, self._widths[:, None]) / self._widths[:, None]
        dist = np.minimum(self._last_d + moved, 1.0)
        z = dist * self.scale[:, None]
        due = z >= level
        due &= full[:, None]
        for k in np.flatnonzero(due.any(axis=1)):
            width = self.windows[k]
            view = self.ring.last(width)
            rows = np.flatnonzero(due[k])
            if rows.size == self.series:
                d_now = self._distance(sort_rows(view), rows)
                self._last_d[k] = d_now
                self._last_at[k] = seen
                dist[k] = d_now
            else:
                d_now = self._distance(sort_rows(view[rows]), rows)
                self._last_d[k, rows] = d_now
                self._last_at[k, rows] = seen
                dist[k, rows] = d_now
            z[k] = dist[k] * self.scale[k]
        if not full.all():
            z[~full] = 0.0
            dist[~full] = 0.0
        return z, dist, due

    def exact_at(self, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact (z, D) of every window ending at row `end`, each (windows, series)."""
        n_w = len(self.windows)
        dist = np.zeros((n_w, self.series))
        everything = np.arange(self.series)
        for k, width in enumerate(self.windows):
            if end >= width and self.series:
                view = self.ring.ending(end, width)
                dist[k] = self._distance(sort_rows(view), everything)
        return dist * self.scale[:, None], dist

    def checkpoints(self, ends: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, D) at each check ending at row `ends[c]` (pushed already), (checks, windows, series).

        Exact wherever z could reach `level` (per series); elsewhere an upper bound below it.
        The bound comes from counts of the window's values in BUCKETS equal-frequency buckets
        of the reference (cumulative counts over the checks' rows, so every check of a batch
        costs a subtraction per bucket, see `bucket_bounds`); only checks whose bound reaches
        the level are sorted and evaluated exactly.
        """
        ends = np.asarray(ends, dtype=np.int64)
        checks, series = ends.size, self.series
        dist = np.zeros((checks, len(self.windows), series))
        if not checks or not series:
            return np.zeros_like(dist), dist
        seen = self.rows_seen
        level = np.asarray(level, dtype=np.float64)
        if level.shape != (series,):  # a scalar level (np.broadcast_to costs ~3 us a call)
            level = np.full(series, level, dtype=np.float64)
        # checks are multiples of K and windows multiples of the grain: so is every start
        start = max(int(ends[0]) - max(self.windows), 0)
        view = self.ring.last(seen - start)
        prefix = self._prefix_since(start)
        grain = self.grain
        stops = (ends - start) // grain  # prefix entry of each check's last grain
        # checks every K rows (an arithmetic run, as the detector asks): each window's counts
        # are two strided slices of the prefix, no gathers
        step = int(stops[1] - stops[0]) if checks > 1 else 1
        regular = step > 0 and bool((stops[1:] - stops[:-1] == step).all())
        end_list = ends.tolist()
        # ends ascend: each window is full from check `first` on
        firsts = [bisect.bisect_left(end_list, width) for width in self.windows]
        for k, width in enumerate(self.windows):
            first = firsts[k]
            if first == checks:
                continue
            stop, back = stops[first:], width // grain
            if regular:
                head = int(stop[0])
                rows = slice(head, head + step * stop.size, step)
                early = slice(head - back, head - back + step * stop.size, step)
                scaled = np.subtract(prefix[rows], prefix[early], order="C")  # (checks, series, B)
            else:
                scaled = prefix[stop] - prefix[stop - back]
            dist[first:, k] = self.scaled_bucket_bounds(scaled, width)
        # the bounds that reach the level, every window at once (a few array operations per
        # piece, not per window); class-bucketed series' bounds are their exact D already
        z = dist * self.scale[:, None]
        todo = z >= level
        todo &= self._plain_series
        for k, width in enumerate(self.windows):
            pairs = todo[:, k]
            pairs[: firsts[k]] = False  # not full yet: z = 0 stays (a level <= 0 too)
            if pairs.any():
                marks = np.zeros((checks, series), dtype=bool)
                self._exact(view, start, ends, width, pairs, dist[:, k], marks)
                np.multiply(dist[:, k], self.scale[k], out=z[:, k])
        return z, dist

    def refine(
        self,
        ends: np.ndarray,
        z: np.ndarray,
        dist: np.ndarray,
        level: np.ndarray,
        series: np.ndarray,
    ) -> None:
        """Make `checkpoints` values of the given series exact wherever z >= level (in place).

        For a series whose level dropped after the checks were computed (an alert opened
        inside the batch): the values below the old level were bounds, now some may decide.
        """
        ends = np.asarray(ends, dtype=np.int64)
        if not ends.size or not series.size:
            return
        start = max(int(ends[0]) - max(self.windows), 0)
        view = self.ring.last(self.rows_seen - start)
        chosen = np.zeros(self.series, dtype=bool)
        chosen[series] = True
        for k, width in enumerate(self.windows):
            todo = (z[:, k] >= level[None, :]) & chosen[None, :] & (ends >= width)[:, None]
            todo &= ~self.class_series
            if todo.any():
                out = dist[:, k].copy()
                self._exact(view, start, ends, width, todo, out, np.zeros_like(todo))
                dist[:, k] = out
                z[:, k] = out * self.scale[k]

    def _prefix_since(self, start: int) -> np.ndarray:
        """n x #rows with bucket <= b among the first i grains from row `start`: (cuts + 1,
        series, B).

        A 2-D prefix sum (over buckets, then over time): any window's "n x #values up to
        bucket b" is then one subtraction. Only the grains completed since the last call are
        counted (the sums are kept across batches); the sums may wrap, their differences (at
        most n w) stay exact.
        """
        grain = self.grain
        if start % grain:
            raise AssertionError("checks are not aligned to the grain")
        self._sync_prefix()
        if start < self._prefix_origin:
            raise AssertionError("a check reaches back before the rows still held")
        first = (start - self._prefix_origin) // grain
        return self._prefix.last(self._prefix.written - first)

    def _sync_prefix(self) -> None:
        """Fold the completed grains pushed since the last sync into the prefix sums."""
        grain, held = self.grain, self.ring.oldest()
        done = self._prefix_rows
        if done < held:  # first use, a restore, or more rows than the ring holds went by
            done = -(-held // grain) * grain
            self._prefix.written = 0
            self._prefix.push(np.zeros((1, self.series, BUCKETS), dtype=self._bound_dtype))
            self._prefix_origin = done
        new_rows = (self.ring.written // grain) * grain - done
        if new_rows > 0:
            counts = self._grain_counts(self.ring.ending(done + new_rows, new_rows))
            counts += self._prefix.last(1)
            self._prefix.push(counts)
            done += new_rows
        self._prefix_rows = done

    def _grain_counts(self, codes: np.ndarray) -> np.ndarray:
        """Whole grains of codes counted times n, cumulative over buckets and grains:
        (cuts, series, B)."""
        grain = self.grain
        cuts = codes.shape[1] // grain
        rows = self.series
        shift = code_shift(self.n_ref)
        ranks = codes >> shift
        buckets = self._bucket_of[ranks]
        for j, levels in self._class_levels.items():
            # L is one of b_0 .. b_K; a value equal to a reference value: the class above
            tied = (codes[j] & ((1 << shift) - 1)) > 0
            buckets[j] = 2 * np.searchsorted(levels, ranks[j]) + tied
        buckets = buckets.reshape(rows, cuts, grain)
        # flat index (bucket, cut, row): each running sum below is over the outermost axis,
        # where a shifted add is a few long contiguous runs (np.cumsum is a scalar loop)
        buckets *= cuts * rows
        buckets += self._cut_row_offsets(cuts)
        hist = np.bincount(buckets.ravel(), minlength=rows * BUCKETS * cuts)
        # the sums reach the rows counted (a series' every value): int16 below 2^15 rows
        # halves the memory the running sums stream through (they are bandwidth-bound)
        small = np.int16 if codes.shape[1] < 2**15 else np.int32
        hist = hist.astype(small).reshape(BUCKETS, cuts, rows)
        running_sum(hist, axis=0)
        # (cuts, series, B): buckets last for the bound's maxima
        hist = np.ascontiguousarray(hist.transpose(1, 2, 0))
        running_sum(hist, axis=0)
        # times n (the sums are linear): the bound's unit 1 / (n w); int32 may wrap, as the
        # prefix sums themselves do (only differences, at most n w, are used)
        return np.multiply(hist, self.n_ref, dtype=self._bound_dtype)

    def _cut_row_offsets(self, cuts: int) -> np.ndarray:
        """cut * series + row for every code of `cuts` grains: (series, cuts, grain), intp.

        Added as one same-shape array (a broadcast one runs a loop per grain of ~10 values).
        Kept for the last few grain counts seen (a batch size gives one or two).
        """
        offsets = self._offsets.get(cuts)
        if offsets is None:
            rows, grain = self.series, self.grain
            cut = np.arange(cuts, dtype=np.intp) * rows
            offsets = cut[None, :, None] + np.arange(rows, dtype=np.intp)[:, None, None]
            offsets = np.ascontiguousarray(np.broadcast_to(offsets, (rows, cuts, grain)))
            if len(self._offsets) >= 4:
                self._offsets.clear()
            self._offsets[cuts] = offsets
        return offsets

    def bucket_bounds(self, upto: np.ndarray, width: int) -> np.ndarray:
        """Upper bound on D from a window's counts up to each bucket (checks, series, B).

        A value whose reference rank L falls in bucket b = [e_b, e_b+1) sees F_ref in
        [e_b / n, top_b / n] (top_b: the largest #ref <= x there, ties included) and F_win in
        [upto_b-1 / w, upto_b / w]; the ECDF gap there is at most the larger of the two
        cross differences. Integer arithmetic in units of 1 / (n w); returns (checks, series).
        """
        scaled = np.multiply(upto, self.n_ref, dtype=self._bound_dtype, order="C")
        return self.scaled_bucket_bounds(scaled, width)

    def scaled_bucket_bounds(self, scaled: np.ndarray, width: int) -> np.ndarray:
        """`bucket_bounds` from n x the counts (bound dtype; overwritten when C-contiguous)."""
        scaled = np.ascontiguousarray(scaled)  # the flat views below must be views
        checks = scaled.shape[0]
        tops, edges = self._tiled_bucket_limits(width, checks)
        # every operand the same contiguous shape: numpy runs each as one flat loop (against
        # a broadcast (series, B) operand it runs a short loop per row, ~4x slower)
        # the "up" gaps top_b - scaled_b-1 as one shifted flat subtraction; at b = 0 (nothing
        # below the first bucket) the gap is top_0 itself
        up = np.empty_like(scaled)
        np.subtract(tops.reshape(-1)[1:], scaled.reshape(-1)[:-1], out=up.reshape(-1)[1:])
        up[:, :, 0] = tops[:, :, 0]
        gap = np.subtract(scaled, edges, out=scaled)  # the "down" gaps scaled_b - edge_b
        np.maximum(gap, up, out=gap)
        # the maximum of each run of B by reduceat: ~2x faster than max(axis=2) on runs of 48
        most = np.maximum.reduceat(gap.reshape(-1), self._bucket_row_starts(checks))
        return most.reshape(checks, self.series) / float(self.n_ref * width)

    def _bucket_row_starts(self, checks: int) -> np.ndarray:
        """Flat offsets of the (check, series) rows of B buckets, for reduceat (cached)."""
        starts = self._row_starts.get(checks)
        if starts is None:
            starts = np.arange(checks * self.series, dtype=np.intp) * BUCKETS
            if len(self._row_starts) >= 8:
                self._row_starts.clear()
            self._row_starts[checks] = starts
        return starts

    def _tiled_bucket_limits(self, width: int, checks: int) -> tuple[np.ndarray, np.ndarray]:
        """Bucket tops and edges times `width`, repeated for `checks` checks: (checks, series, B).

        Kept per width at the most checks asked so far (a piece has at most CHUNK_ROWS / K + 1);
        fewer checks take a leading slice, contiguous too.
        """
        held = self._tiled.get(width)
        if held is None or held[0].shape[0] < checks:
            tops = np.ascontiguousarray(
                np.broadcast_to(self._tops_w[width], (checks, *self._tops_w[width].shape))
            )
            edges = np.ascontiguousarray(np.broadcast_to(self._edges_w[width], tops.shape))
            held = self._tiled[width] = (tops, edges)
        return held[0][:checks], held[1][:checks]

    def _exact(
        self,
        view: np.ndarray,
        first: int,
        ends: np.ndarray,
        width: int,
        todo: np.ndarray,
        out: np.ndarray,
        exact: np.ndarray,
    ) -> None:
        """Exact D for the (check, series) pairs in `todo`, into `out`; marks them exact."""
        checks, rows = np.nonzero(todo)
        if not checks.size:
            return
        starts = ends[checks] - width - first
        # whole contiguous runs copied per pair, not one fancy index per element
        # (series, start, width) windows as a read-only strided view: sliding_window_view's
        # argument checks cost more than the gather for the few pairs a check needs
        series, time_stride = view.strides
        windows = as_strided(
            view,
            shape=(view.shape[0], view.shape[1] - width + 1, width),
            strides=(series, time_stride, time_stride),
            writeable=False,
        )
        window = windows[rows, starts]
        out[checks, rows] = self._distance(sort_rows(window), rows)
        exact[checks, rows] = True
