"""Provenance: the canonical model input's hash, and the metered cost of each request.

Cost model (provenance v4 `cpu_seconds`, `gpu_seconds`, `metered_cost_units`, and the
`inferstream_cost_units_total` counter, which adds up the same numbers):

* a batch's model time is the wall time of its model calls (the infer stage); on a CPU
  provider that is `wall x intra-op threads` CPU-seconds, on CUDA/TensorRT GPU-seconds;
* the batch's seconds are shared by its freshly scored requests (a cache hit costs 0) in
  proportion to each row's manifest cost per row when the tiers give one (a cascade-large row
  weighs small + large, so it carries its share of the escalation call too), equally otherwise;
* cost units = CPU-seconds x the model manifest's price per CPU-second (its `cost` section,
  which the build scripts measured at that price), else `INFERSTREAM_COST_PER_CPU_SECOND`;
  GPU-seconds x `INFERSTREAM_COST_PER_GPU_SECOND`. Both defaults are 1 unit per microsecond.

Everything is per batch with numpy: no Python work per row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.tiers.costs import cost_section

GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})
MANIFEST_PRICE = "price_units_per_cpu_second"  # pipeline/tiers/costs.py's cost section


def data_hashes(canonical_inputs: Iterable[bytes]) -> list[str]:
    """sha256 of each request's canonical input bytes (pipeline/core/canonical.py)."""
    sha256 = hashlib.sha256
    return [sha256(raw).hexdigest() for raw in canonical_inputs]


@dataclass
class BatchCost:
    """A batch's metered cost: the provenance values (per-batch constants when every row pays
    the same, else per-row columns) and the batch's total, which the metrics counter adds."""

    constants: dict[str, float] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    total_units: float = 0.0
    seconds: float = 0.0  # CPU- or GPU-seconds of the whole batch
    units: np.ndarray | None = None  # per row, for the per-tenant counter (None: all equal)
    rows: int = 0

    def row_units(self) -> np.ndarray:
        if self.units is not None:
            return self.units
        return np.full(self.rows, self.constants.get("metered_cost_units", 0.0))


ZERO = {"cpu_seconds": 0.0, "gpu_seconds": 0.0, "metered_cost_units": 0.0}


class RequestCosts:
    """The cost model above, for one worker's settings."""

    def __init__(
        self, cpu_threads: int = 1, cpu_price: float = 1e6, gpu_price: float = 1e6
    ) -> None:
        if cpu_threads < 1 or cpu_price < 0 or gpu_price < 0:
            raise ValueError("cost model: threads >= 1 and prices >= 0")
        self.cpu_threads, self.cpu_price, self.gpu_price = cpu_threads, cpu_price, gpu_price
        self._prices: dict[tuple[str, str], float] = {}  # (model, version) -> price per CPU-s

    @classmethod
    def from_settings(cls, settings: Any) -> RequestCosts:
        return cls(
            settings.inference_threads, settings.cost_per_cpu_second, settings.cost_per_gpu_second
        )

    def cpu_price_of(self, model: Any) -> float:
        """The manifest's price per CPU-second, else the configured one (read once per version:
        a cost section may live in a sibling costs.json)."""
        manifest = model.manifest
        key = (str(manifest.name), str(manifest.version))
        price = self._prices.get(key)
        if price is None:
            value = cost_section(manifest, getattr(model, "directory", None)).get(MANIFEST_PRICE)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            price = self._prices[key] = float(value) if ok else self.cpu_price
        return price

    def of_batch(
        self,
        model: Any,
        model_seconds: float,
        rows: int,
        cache_hits: Any = None,
        weights: Any = None,
    ) -> BatchCost:
        """Cost of a batch of `rows` requests whose model calls took `model_seconds` (wall);
        `cache_hits` (bool per row, or None) cost 0; `weights` per row (the tiers' manifest
        cost per row; None or a scalar: equal shares)."""
        if rows == 0 or model_seconds <= 0:
            return BatchCost(dict(ZERO), rows=rows)
        on_gpu = str(getattr(model, "provider", "")) in GPU_PROVIDERS
        seconds = model_seconds if on_gpu else model_seconds * self.cpu_threads
        price = self.gpu_price if on_gpu else self.cpu_price_of(model)
        kind, other = ("gpu_seconds", "cpu_seconds") if on_gpu else ("cpu_seconds", "gpu_seconds")
        hits = None if cache_hits is None else np.asarray(cache_hits, dtype=bool)
        has_hits = hits is not None and len(hits) == rows and bool(hits.any())
        per_row_weights = isinstance(weights, np.ndarray) and len(np.unique(weights)) > 1
        if not has_hits and not per_row_weights:  # every row pays the same: constants
            each = seconds / rows
            return BatchCost(
                {kind: each, other: 0.0, "metered_cost_units": each * price},
                total_units=seconds * price, seconds=seconds, rows=rows,
            )  # fmt: skip
        w = np.ones(rows) if not per_row_weights else np.asarray(weights, dtype=np.float64)
        if has_hits:
            w = np.where(hits, 0.0, w)
        total_w = float(w.sum())
        if total_w <= 0:  # unknown weights (all 0): equal shares among the fresh rows
            w = np.ones(rows) if hits is None else (~hits).astype(np.float64)
            total_w = float(w.sum())
        if total_w <= 0:  # every row a cache hit: no model time is theirs
            return BatchCost(dict(ZERO), rows=rows)
        share = w * (seconds / total_w)
        units = share * price
        return BatchCost(
            {other: 0.0}, {kind: share, "metered_cost_units": units},
            total_units=float(units.sum()), seconds=seconds, units=units, rows=rows,
        )  # fmt: skip
