"""Reference ranks of a batch by a quantised lookup table, exact at every reference value.

`NumericIndex.codes` needs, for each value x of feature j, L = #ref_j < x and T = #ref_j == x.
One searchsorted over all features' keys costs ~150 ns a value (a cache miss per step over a
d * n_ref table), which alone capped the detector near 300k rows/s. Here each feature's range
[min, max] is cut into `CELLS_PER_REF * n_ref` equal cells, and a table holds, per cell, how
many reference values lie in earlier cells. A value's cell is two float ops away; the cell's
count is exact for everything outside the cell, and the few reference values inside it (0-2 on
smooth data) are resolved by a short binary search run over the whole batch at once.

The table is packed (`pack_entry`): that count and two flags (the cell holds reference values;
they are all one value) in one small integer, so a batch's values take one gather from a table
a quarter of the int64 one's size (it is read at random: cache misses were most of its cost).

Exactness: the cell function is the same float32 expression for the reference and the queries,
and it is monotone (rounding and floor preserve order), so a reference value in an earlier cell
is < x and one in a later cell is > x. Only references with every value finite get a grid;
NaN queries take the searchsorted path (`NumericIndex.codes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# cells per reference value: more cells, fewer values left to search inside a cell
CELLS_PER_REF = 8
# cells of all features together (2-4 bytes each): a big reference gets fewer cells per value,
# i.e. more values to search inside a cell, rather than a table of hundreds of MB
MAX_TABLE_CELLS = 1 << 22
# packed table entries: (#ref in earlier cells) << FLAG_BITS | ONE_VALUE | OCCUPIED
FLAG_BITS = 2
OCCUPIED = 1  # the cell holds reference values
ONE_VALUE = 2  # ... and they are all one value
FLAG_MASK = OCCUPIED | ONE_VALUE
# crowded queries compare against the fullest cell's count of values, up to this many; beyond
# (a value repeated many times), a binary search in the cell
LINEAR_WINDOW = 16


def pack_entry(
    first: np.ndarray, occupied: np.ndarray, one_value: np.ndarray, n_ref: int
) -> np.ndarray:
    """Table entries from per-cell counts (#ref in earlier cells, 0..n) and flags.

    uint16 while the packed value fits (n < 2^14: the table is then 2 bytes a cell), else
    uint32; the same bits either way.
    """
    dtype = np.uint16 if (n_ref << FLAG_BITS) | FLAG_MASK < 2**16 else np.uint32
    packed = np.asarray(first, dtype=np.int64) << FLAG_BITS
    packed |= np.where(occupied, OCCUPIED, 0)
    packed |= np.where(one_value, ONE_VALUE, 0)
    return packed.astype(dtype)


@dataclass(frozen=True, eq=False)
class RankGrid:
    cells: int  # G per feature
    low: np.ndarray  # float32 (d,): each feature's smallest reference value
    scale: np.ndarray  # float32 (d,): G / (max - min), 1 for a constant feature
    cell_base: np.ndarray  # int64 (d,): j * (G + 1), feature j's first entry in `table`
    # (d * (G + 1),) packed entries (`pack_entry`): #ref of feature j in earlier cells and the
    # cell's flags; the spare last entry of a feature holds n and no flags
    table: np.ndarray
    ref: np.ndarray  # float32 (d * (n + window),): sorted references, each followed by +inf
    ref_base: np.ndarray  # int64 (d,): j * (n + window), feature j's first entry in `ref`
    run: np.ndarray  # int32, like `ref`: how many reference values equal this one (0 at +inf)
    window: int  # the fullest mixed cell's count: reference values compared per crowded query

    @classmethod
    def build(cls, values: np.ndarray) -> RankGrid | None:
        """The grid of a reference [n, d] (float32), or None if it has non-finite values."""
        values = np.asarray(values, dtype=np.float32)
        n_ref, d = values.shape
        if not n_ref or not d or not np.isfinite(values).all():
            return None
        cells = max(1, min(CELLS_PER_REF * n_ref, MAX_TABLE_CELLS // d))
        ordered = np.sort(values, axis=0).T  # (d, n)
        low = ordered[:, 0].copy()
        span = ordered[:, -1].astype(np.float64) - low
        with np.errstate(divide="ignore", over="ignore"):
            scale = np.where(span > 0, cells / np.where(span > 0, span, 1.0), 1.0)
        scale = scale.astype(np.float32)
        if not np.isfinite(scale).all():  # a span so small that G / span overflows float32
            return None
        grid = cls(
            cells=cells,
            low=low,
            scale=scale,
            cell_base=np.arange(d, dtype=np.int64) * (cells + 1),
            table=np.zeros(0, np.uint16),
            ref=np.zeros(0, np.float32),
            ref_base=np.zeros(0, np.int64),
            run=np.zeros(0, np.int32),
            window=0,
        )
        ref_cells = grid._cells(ordered.T).T  # (d, n), non-decreasing along each row
        every_cell = np.arange(cells + 1)
        first = np.stack([np.searchsorted(ref_cells[j], every_cell) for j in range(d)])
        held = np.diff(first, axis=1)  # (d, G): reference values in each cell
        last = np.maximum(first[:, 1:] - 1, 0)
        same = np.take_along_axis(ordered, first[:, :-1].clip(max=n_ref - 1), axis=1) == (
            np.take_along_axis(ordered, last.clip(max=n_ref - 1), axis=1)
        )
        uniform = (held > 0) & same
        window = max(int(np.where(uniform, 0, held).max()), 1)
        stride = n_ref + window  # each feature's sorted values, then `window` +inf
        # the spare entry per feature (never a query's cell) holds first = n and no flags
        occupied = np.zeros((d, cells + 1), dtype=bool)
        occupied[:, :cells] = held > 0
        one_value = np.zeros_like(occupied)
        one_value[:, :cells] = uniform
        table = pack_entry(first, occupied, one_value, n_ref)
        ref = np.full((d, stride), np.inf, dtype=np.float32)
        ref[:, :n_ref] = ordered
        run = np.zeros((d, stride), dtype=np.int32)
        for j in range(d):
            _, inverse, counts = np.unique(ordered[j], return_inverse=True, return_counts=True)
            run[j, :n_ref] = counts[inverse]
        object.__setattr__(grid, "table", table.ravel())
        object.__setattr__(grid, "ref", ref.ravel())
        object.__setattr__(grid, "ref_base", np.arange(d, dtype=np.int64) * stride)
        object.__setattr__(grid, "run", run.ravel())
        object.__setattr__(grid, "window", window)
        return grid

    @property
    def uniform(self) -> np.ndarray:
        """Per table entry: the cell holds reference values, all equal (e.g. an integer
        feature's value): a query there is resolved by one comparison, whatever the count."""
        return (self.table & ONE_VALUE) > 0

    def _cells(
        self, values: np.ndarray, low: np.ndarray | None = None, scale: np.ndarray | None = None
    ) -> np.ndarray:
        """Cell of each value (rows, d) in [0, G - 1]; the one expression for ref and queries.

        `low` and `scale`: the same float32 per feature, optionally repeated to (rows, d).
        """
        low = self.low if low is None else low
        scale = self.scale if scale is None else scale
        with np.errstate(over="ignore"):  # huge values overflow to +-inf: the end cells
            position = values - low
            position *= scale
        # clipped to >= 0 first, truncation is floor; and it keeps the order
        np.maximum(position, 0, out=position)
        np.minimum(position, self.cells - 1, out=position)
        return position.astype(np.int32)

    def codes(self, values: np.ndarray, shift: int, dtype: type[np.signedinteger]) -> np.ndarray:
        """`(#ref < x) << shift | #ref == x` per value of a NaN-free batch (rows, d) float32.

        Every value is first resolved as if its cell held at most one distinct reference
        value v (`run` copies): L = #ref in earlier cells, plus `run` if x > v, and T = `run`
        if x == v. That is exact for an empty cell too (v is then the next reference value,
        > x, and nothing is added) and costs a few flat passes over the batch, cheaper than
        picking those values out. Only the cells holding several distinct values are redone.
        """
        # C order throughout: the mixed cells' queries are written back through flat views
        values = np.ascontiguousarray(values, dtype=np.float32)
        low, scale, cell_base, ref_base = self._row_tiles(values.shape[0])
        cell = self._cells(values, low, scale)
        cell += cell_base
        entry = self.table[cell]
        below = entry.astype(dtype)
        below >>= FLAG_BITS  # #ref in earlier cells
        first = below + ref_base  # the cell's first reference value (or the next one's)
        # one gather of (value, run) pairs: a cache miss a value, not two
        pair = self._ref_run[first]
        halves = pair.view(np.int32).reshape(*pair.shape, 2)
        v = halves.view(np.float32)[..., 0]
        run = halves[..., 1]
        ties = run * (values == v)
        above = run * (values > v)
        below += above
        code = below
        code <<= shift
        code |= ties
        mixed = np.flatnonzero((entry & FLAG_MASK) == OCCUPIED)
        if mixed.size:
            self._resolve_mixed(values, first, cell, ref_base, mixed, shift, code)
        return code

    def _resolve_mixed(
        self,
        values: np.ndarray,
        first: np.ndarray,
        cell: np.ndarray,
        ref_base: np.ndarray,
        mixed: np.ndarray,
        shift: int,
        code: np.ndarray,
    ) -> None:
        """Codes of the queries at flat positions `mixed` (cells of several distinct reference
        values) searched inside their cell; written into `code`. All arrays (rows, d), C order.
        """
        start = first.reshape(-1)[mixed].astype(np.int64)
        base = ref_base.reshape(-1)[mixed]  # the feature's first entry in `ref`
        x = values.reshape(-1)[mixed]
        if self.window <= LINEAR_WINDOW:
            # every reference value past the cell is > x (later cells, then the +inf padding),
            # so the `window` values from the cell's first one hold every one <= x; and every
            # copy of a value is in its one cell. Window-major (window, m), so the count is
            # window - 1 long adds; integers, no BLAS (OpenBLAS can flag a spurious FE_INVALID)
            seen = self.ref[start[None, :] + self._window_steps]
            # (#ref < x) << shift + #ref == x, summed over the window in one pass
            weight = np.where(seen < x, np.int64(1) << shift, np.int64(0))
            weight += seen == x
            code.reshape(-1)[mixed] = ((start - base) << shift) + weight.sum(axis=0)
            return
        # a cell crowded with distinct values: a binary search in it
        stop = base + (self.table[cell.reshape(-1)[mixed] + 1] >> FLAG_BITS)
        position = self._lower_bound(x, start, stop)
        ties = np.where(self.ref[position] == x, self.run[position], 0)
        position -= base
        code.reshape(-1)[mixed] = (position << shift) | ties

    def _row_tiles(self, rows: int) -> tuple[np.ndarray, ...]:
        """low, scale, cell_base and ref_base (int32) repeated to (rows, d), contiguous.

        Same-shape operands make each per-value operation one flat loop; against a (d,) one
        numpy runs a loop of d values per row. Kept for the last few batch sizes seen.
        """
        tiles = self._tiles.get(rows)
        if tiles is None:
            d = self.low.size
            tiles = tuple(
                np.ascontiguousarray(np.broadcast_to(a, (rows, d)))
                for a in (self.low, self.scale, *self._int32_bases)
            )
            if len(self._tiles) >= 4:
                self._tiles.clear()
            self._tiles[rows] = tiles
        return tiles

    @cached_property
    def _int32_bases(self) -> tuple[np.ndarray, np.ndarray]:
        """cell_base and ref_base as int32 (both index tables far below 2^31 entries)."""
        return self.cell_base.astype(np.int32), self.ref_base.astype(np.int32)

    @cached_property
    def _tiles(self) -> dict[int, tuple[np.ndarray, ...]]:
        return {}

    @cached_property
    def _ref_run(self) -> np.ndarray:
        """`ref` and `run` side by side, each pair one int64 (a carrier for one gather; split
        again through the same int32 view, so the byte order does not matter)."""
        pair = np.empty((self.ref.size, 2), dtype=np.int32)
        pair[:, 0] = self.ref.view(np.int32)
        pair[:, 1] = self.run
        return pair.view(np.int64).reshape(-1)

    @cached_property
    def _window_steps(self) -> np.ndarray:
        """0 .. window - 1 as a column: a crowded query's reference values, window-major."""
        return np.arange(self.window, dtype=np.int64)[:, None]

    def _lower_bound(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """First index in [lo, hi) of `ref` whose value is >= x, for all queries at once."""
        for _ in range(self.window.bit_length()):
            open_range = lo < hi
            mid = (lo + hi) >> 1
            less = self.ref[mid] < x
            less &= open_range
            lo = np.where(less, mid + 1, lo)
            hi = np.where(open_range & ~less, mid, hi)
        return lo
