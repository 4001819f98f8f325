"""Null streams for autocorrelated data: block bootstrap of an ordered stationary sample.

The iid calibration assumes that rows are independent. Real streams are not (per-card
bursts, time of day): an AR(1) stream with phi = 0.5 makes overlapping windows far noisier
than independent rows would, and an iid-calibrated threshold then alarms ~50x too often. When
a stationary sample *in arrival order* exists (the model's reference window as recorded, or a
recorded stretch of the live stream), the calibration instead simulates null streams by
resampling it in blocks, which keeps its serial dependence up to the block length:

- per feature, the sample is turned into ranks (KS is invariant to monotone maps) and smoothed
  by uniform jitter within the rank, so resampled values are continuous like the uniform null;
- each simulated stream *and* its reference are circular moving-block bootstraps of one
  feature's rank sequence (the reference too: a reference recorded from a dependent stream is
  itself noisier than an iid one);
- the block length is twice Politis and White's optimal one for the circular block bootstrap
  (b ~ (2 G^2 / D)^(1/3) n^(1/3), from the rank autocorrelation under a flat-top lag window
  of 2 m lags, m being the lag after which it stays inside +-2 sqrt(log10(n) / n) for K_n
  lags), at least 2 m, maximised over features; independent data get blocks of 1 (a
  smoothed iid bootstrap). Twice, because their rule balances bias against the variance of a
  variance estimate, while a threshold only suffers from the bias (too short blocks drop
  autocovariance: ERT -35 % at the optimal length on AR(1) phi = 0.5, see bench.drift).
Streams cycle over the features, so the pooled false-alarm rate is the family's average.

Categorical features (G test) get the same treatment one at a time (`CategoricalNull`): the
block length comes from the autocorrelation of each category's indicator, and the simulated
reference counts and windows are block resamples of the feature's ordered codes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

METHOD = "ks-block-bootstrap/1"
G_METHOD = "g-block-bootstrap/1"
MIN_ROWS = 500  # fewer ordered rows say too little about dependence at window scales
_MAX_LAG = 200


def rank_autocorrelation(ranks: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of each column at lags 1..max_lag: (max_lag, d)."""
    x = ranks.astype(np.float64)
    x -= x.mean(axis=0)
    var = (x * x).sum(axis=0)
    var[var == 0] = 1.0
    n = x.shape[0]
    spectrum = np.fft.rfft(x, n=2 * n, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), axis=0)[: max_lag + 1]
    return acov[1:] / var


def block_length(ranks: np.ndarray) -> int:
    """Block length from the measured autocorrelation (see the module doc), max over features."""
    n = ranks.shape[0]
    lags = min(_MAX_LAG, n // 10)
    rho = rank_autocorrelation(ranks, lags)
    band = 2.0 * math.sqrt(math.log10(n) / n)
    run = max(5, math.ceil(math.sqrt(math.log10(n))))
    inside = np.abs(rho) < band
    longest = 1.0
    for j in range(ranks.shape[1]):
        m = lags  # never settles inside the band: as long as we can tell
        for lag in range(lags - run + 1):
            if inside[lag : lag + run, j].all():
                m = lag
                break
        if m == 0:
            continue  # no measurable dependence in this feature
        # Politis-White (2004, with Patton et al. 2009's correction) for the circular block
        # bootstrap, with the flat-top lag window over lags up to 2m
        top = min(2 * m, lags)
        k = np.arange(1, top + 1)
        weight = np.where(k / top <= 0.5, 1.0, 2.0 * (1.0 - k / top))
        g = 2.0 * float((weight * k * rho[:top, j]).sum())
        spectrum = 1.0 + 2.0 * float((weight * rho[:top, j]).sum())
        d_cb = 4.0 / 3.0 * spectrum**2
        optimal = (2.0 * g * g / max(d_cb, 1e-12)) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
        # twice the MSE-optimal length: here only the bias matters (it is ~ -1/b, and the
        # threshold's ERT moves ~exp(4 t dt)), the sample being resampled is fixed
        longest = max(longest, 2.0 * optimal, 2.0 * m)
    return int(max(1, min(math.ceil(longest), n // 20)))


def _sample_ranks(sample: np.ndarray) -> np.ndarray:
    """Ranks of an ordered sample's columns; ValueError unless it is 2-D with MIN_ROWS rows."""
    values = np.asarray(sample, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < MIN_ROWS:
        raise ValueError(
            f"block-bootstrap calibration needs an ordered sample of >= {MIN_ROWS} rows, "
            f"got shape {values.shape}"
        )
    return _ranks(values)


def _ranks(sample: np.ndarray) -> np.ndarray:
    values = np.asarray(sample, dtype=np.float64)
    n, d = values.shape
    ranks = np.empty((n, d), dtype=np.int32)
    for j in range(d):
        # stable argsort: ties keep arrival order, which the jitter then spreads
        ranks[np.argsort(values[:, j], kind="stable"), j] = np.arange(n, dtype=np.int32)
    return ranks


@dataclass(frozen=True, eq=False)
class DependentNull:
    """Block-bootstrap null streams from an ordered sample of the numeric features."""

    ranks: np.ndarray  # (n, d) int32 rank of each row's value within its column
    block: int

    @classmethod
    def from_sample(cls, sample: np.ndarray, block: int | None = None) -> DependentNull:
        ranks = _sample_ranks(sample)
        chosen = block_length(ranks) if block is None else int(block)
        if chosen < 1:
            raise ValueError(f"block length must be >= 1, got {chosen}")
        return cls(ranks, chosen)

    @property
    def rows(self) -> int:
        return int(self.ranks.shape[0])

    @property
    def label(self) -> str:
        return f"block-bootstrap(block={self.block}, rows={self.rows})"

    def key(self) -> dict[str, Any]:
        digest = hashlib.sha256(np.ascontiguousarray(self.ranks).tobytes()).hexdigest()[:16]
        return {"method": METHOD, "block": self.block, "sample": digest}

    def _resample(self, rng: np.random.Generator, column: int, length: int) -> np.ndarray:
        n = self.rows
        index = _circular_blocks(rng, n, self.block, length)
        return (self.ranks[index, column] + rng.random(length)) / n

    def draw(
        self, rng: np.random.Generator, streams: int, n_ref: int, total: int
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self.ranks.shape[1]
        first = int(rng.integers(0, d))
        reference = np.empty((streams, n_ref))
        values = np.empty((streams, total))
        for s in range(streams):
            column = (first + s) % d
            reference[s] = self._resample(rng, column, n_ref)
            values[s] = self._resample(rng, column, total)
        return reference, values


def dependent_columns(sample: np.ndarray) -> tuple[np.ndarray, DependentNull | None]:
    """Columns of an ordered sample with measurable serial dependence, and their null.

    One feature with long memory (e.g. a transaction count that follows the time of day) must
    not lengthen the blocks, and so raise the threshold, of features whose rows are independent:
    those (block length 1) keep the iid calibration; the others share one block bootstrap with
    the longest block among them. Returns (indices, None) when no column is dependent.
    """
    ranks = _sample_ranks(sample)
    blocks = np.array([block_length(ranks[:, j : j + 1]) for j in range(ranks.shape[1])])
    dependent = np.flatnonzero(blocks > 1)
    if not dependent.size:
        return dependent, None
    return dependent, DependentNull(ranks[:, dependent], int(blocks[dependent].max()))


def _circular_blocks(rng: np.random.Generator, n: int, block: int, length: int) -> np.ndarray:
    """Indices of a circular moving-block resample of `length` rows from `n`."""
    starts = rng.integers(0, n, -(-length // block))
    return (starts[:, None] + np.arange(block)[None, :]).ravel()[:length] % n


@dataclass(frozen=True, eq=False)
class CategoricalNull:
    """Block-bootstrap null streams of one categorical feature from its ordered codes."""

    codes: np.ndarray  # (n,) int32 in 0..categories-1, arrival order
    block: int

    @classmethod
    def from_codes(cls, codes: np.ndarray) -> CategoricalNull | None:
        """The null of a dependent feature, or None when its rows show no serial dependence
        (its iid calibration stands). ValueError unless there are MIN_ROWS codes."""
        values = np.asarray(codes).reshape(-1)
        if values.size < MIN_ROWS:
            raise ValueError(
                f"block-bootstrap calibration needs an ordered sample of >= {MIN_ROWS} rows, "
                f"got {values.size}"
            )
        compact = np.unique(values, return_inverse=True)[1].astype(np.int32)
        categories = int(compact.max()) + 1
        if categories < 2:
            return None
        indicators = compact[:, None] == np.arange(categories, dtype=np.int32)[None, :]
        block = block_length(indicators.astype(np.float64))
        return cls(compact, block) if block > 1 else None

    @property
    def rows(self) -> int:
        return int(self.codes.size)

    @property
    def categories(self) -> int:
        return int(self.codes.max()) + 1

    @property
    def label(self) -> str:
        return f"block-bootstrap(block={self.block}, rows={self.rows})"

    def key(self) -> dict[str, Any]:
        digest = hashlib.sha256(np.ascontiguousarray(self.codes).tobytes()).hexdigest()[:16]
        return {"method": G_METHOD, "block": self.block, "sample": digest}

    def draw(
        self, rng: np.random.Generator, streams: int, n_ref: int, total: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(streams, categories) reference counts and (streams, total) window codes."""
        n, c = self.rows, self.categories
        counts = np.empty((streams, c))
        codes = np.empty((streams, total), dtype=np.int32)
        for s in range(streams):
            reference = self.codes[_circular_blocks(rng, n, self.block, n_ref)]
            counts[s] = np.bincount(reference, minlength=c)
            codes[s] = self.codes[_circular_blocks(rng, n, self.block, total)]
        return counts, codes
