"""Sliding windows over a stream of per-feature codes: a ring buffer and lazily exact KS windows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pipeline.drift.ks import code_dtype, ks_scale, sort_rows

# D of the windows' sorted codes for the given series (rows): (sorted_codes, series) -> D
DistanceFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Ring:
    """The last `capacity` columns of an (rows, time) stream.

    Every column is written twice, at p and p + capacity, so the most recent w columns are always
    one contiguous slice: windows are views, never gathered copies.
    """

    def __init__(self, rows: int, capacity: int, dtype: type | np.dtype, fill: object = 0) -> None:
        self.capacity = int(capacity)
        self.data = np.full((rows, 2 * self.capacity), fill, dtype=dtype)
        self.written = 0  # columns pushed since the start (not capped)

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

    def state(self) -> tuple[np.ndarray, int]:
        """Newest columns (up to capacity), oldest first, and the total written."""
        return self.last(min(self.written, self.capacity)).copy(), self.written

    def restore(self, columns: np.ndarray, written: int) -> None:
        self.data[...] = 0
        self.written = written - columns.shape[1]
        self.push(columns)
        self.written = written


class KSWindows:
    """Exact KS distances of the last w codes of m series to their references, for each w.

    A check only needs the exact D where it can change a decision. Replacing r of a window's w
    values moves its ECDF by at most r/w anywhere, so |D_now - D_then| <= min(r, w)/w. A window
    whose bound z_then + that shift stays below the caller's `level` is not recomputed: its bound
    is returned instead and it provably cannot cross `level`. Decisions are therefore the same as
    with an exact evaluation every check; only the work differs.
    """

    def __init__(
        self, series: int, windows: Sequence[int], n_ref: int, distance: DistanceFn
    ) -> None:
        self.windows = tuple(int(w) for w in windows)
        self.n_ref = int(n_ref)
        self.series = int(series)
        self.ring = Ring(series, max(self.windows), code_dtype(self.n_ref))
        self.scale = np.array([ks_scale(self.n_ref, w) for w in self.windows])
        self._widths = np.array(self.windows, dtype=np.int64)
        self._distance = distance
        self.forget_bounds()

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
