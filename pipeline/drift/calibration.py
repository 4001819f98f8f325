"""Alarm thresholds set for a target expected run time (ERT) between false alarms.

Per-test p-values say nothing about how often a detector that looks every K rows, at three
overlapping windows, for d features, will cry wolf. So the threshold on z is set by simulation.

Method (the same for KS and for the G-test):
1. Alerts are per feature and features are independent under the null, so d features with a
   family ERT of E rows need each feature to raise a false OPEN once per d * E rows. One
   feature's behaviour is therefore calibrated once and serves every d and every ERT.
2. Simulate many independent null streams of one feature, each with its own reference: uniform
   data for KS (the statistic is distribution-free, so this covers every continuous feature);
   the reference's own category frequencies for the G-test (parametric bootstrap of both
   samples). Run the detector's own window code on them and record the per-check evidence
   (max over windows of z, with the effect-size floor applied).
3. Replay that evidence through the detector's own alert state machine (persistence rule,
   hysteresis, cooldown) for a grid of thresholds, counting OPEN events: the null curve
   events(t) over `rows` simulated rows. Serial correlation between checks is thereby exact,
   not modelled.
4. Solve rows / events(t) = d * ERT. With >= 200 events expected at the answer, log(events) is
   interpolated between grid points; with fewer (runtime calibrations are sized for ~60) the
   tail is smoothed by a Poisson regression log E[events] = a + b t + c t^2 (the Kolmogorov
   tail is ~exp(-2 t^2)) over the part of the curve within ~20x of the target count.
The curve is cached as JSON, keyed by everything that shapes it; pipeline/drift/calibrations/
ships a 160M-row curve for the default configuration with a 5,000-row reference. Cost: ~1 us
per simulated feature-row on one core, i.e. ~20 s for d = 20 at the default ERT (60 x 400k
rows). Direct simulation of run lengths (unit tests, `python -m bench.drift`) verifies it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.drift.alerts import AlertMachine
from pipeline.drift.categorical import g_test
from pipeline.drift.config import DriftConfig
from pipeline.drift.dependence import CategoricalNull, DependentNull
from pipeline.drift.ks import code_dtype, code_shift, ks_distance_sorted
from pipeline.drift.windows import KSWindows

log = logging.getLogger(__name__)

FORMAT = "inferstream.drift.calibration/1"
SHIPPED_DIR = Path(__file__).resolve().parent / "calibrations"
KS_GRID = np.round(np.arange(1.5, 4.0001, 0.02), 4)
_MIN_EVENTS_AT_TARGET = 40.0  # a cached curve is reused while it expects this many at target
_MAX_ROWS = 60_000_000  # cap on simulated feature-rows per calibration


def default_cache_dir() -> Path:
    from pipeline.config import settings

    return settings().cache_dir / "drift-calibration"


@dataclass(frozen=True)
class NullCurve:
    """False-alarm counts (OPEN events) of one null feature, per threshold, over `rows` rows."""

    test: str
    key: dict[str, Any]
    thresholds: np.ndarray
    events: np.ndarray
    rows: int
    seconds: float = 0.0

    @property
    def name(self) -> str:
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        return f"{self.test.lower()}-{digest[:16]}"

    def merged(self, other: NullCurve) -> NullCurve:
        if other.key != self.key or not np.array_equal(other.thresholds, self.thresholds):
            raise ValueError("curves of different calibrations")
        return NullCurve(
            self.test,
            self.key,
            self.thresholds,
            self.events + other.events,
            self.rows + other.rows,
            self.seconds + other.seconds,
        )

    def covers(self, rows_per_event: float) -> bool:
        return self.rows >= _MIN_EVENTS_AT_TARGET * rows_per_event or self.rows >= _MAX_ROWS

    def threshold_for(self, rows_per_event: float) -> float:
        """Threshold giving one false OPEN per `rows_per_event` rows of one feature."""
        target = self.rows / rows_per_event  # expected events at the answer
        t, e = self.thresholds, self.events.astype(np.float64)
        if not e.any():
            return float(t[0])  # evidence never reached the grid: any level works
        if target >= e.max():
            raise ValueError(
                f"target of one false alarm per {rows_per_event:.0f} rows is below the "
                f"calibration grid (z >= {t[0]}); raise target_ert"
            )
        if target >= 200:  # plenty of events: interpolate log(events) directly
            below = int(np.flatnonzero(e >= target)[-1])
            t0, t1 = t[below], t[below + 1]
            e0, e1 = np.log(e[below]), np.log(max(e[below + 1], 0.5))
            return float(t0 + (np.log(target) - e0) * (t1 - t0) / (e1 - e0))
        a, b, c = self._fit(target)
        lo = float(t[np.argmax(e)])
        if c < 0:
            lo = max(lo, -b / (2 * c))
        hi = lo + 4.0
        goal = np.log(target)
        for _ in range(80):  # bisection on the fitted, decreasing log-rate
            mid = 0.5 * (lo + hi)
            if a + b * mid + c * mid * mid > goal:
                lo = mid
            else:
                hi = mid
        return float(0.5 * (lo + hi))

    def _fit(self, target: float) -> tuple[float, float, float]:
        t, e = self.thresholds, self.events.astype(np.float64)
        # the tail near the target: from where events are ~20x the target (or 300) down to 1;
        # a quadratic over a much wider range bends away from the far tail
        upper = max(20.0 * target, 300.0)
        sel = (e >= 1) & (e <= upper)
        if sel.sum() < 4:
            sel = e >= 1
        x, y = t[sel], e[sel]
        if x.size < 3:
            slope = -4.0 * float(x.mean())  # d/dt of -2 t^2: the Kolmogorov tail
            return float(np.log(y.mean()) - slope * x.mean()), slope, 0.0
        design = np.stack([np.ones_like(x), x, x * x], axis=1)
        beta = np.linalg.lstsq(design, np.log(y), rcond=None)[0]
        for _ in range(50):  # Poisson IRLS
            mu = np.exp(design @ beta)
            z = design @ beta + (y - mu) / mu
            weighted = design * mu[:, None]
            new = np.linalg.solve(design.T @ weighted + 1e-9 * np.eye(3), weighted.T @ z)
            if np.allclose(new, beta, rtol=1e-10, atol=1e-12):
                beta = new
                break
            beta = new
        return float(beta[0]), float(beta[1]), float(beta[2])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "test": self.test,
            "key": self.key,
            "rows": int(self.rows),
            "seconds": round(self.seconds, 3),
            "thresholds": [float(x) for x in self.thresholds],
            "events": [int(x) for x in self.events],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NullCurve:
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown calibration format {data.get('format')!r}")
        return cls(
            data["test"],
            data["key"],
            np.asarray(data["thresholds"], dtype=np.float64),
            np.asarray(data["events"], dtype=np.int64),
            int(data["rows"]),
            float(data.get("seconds", 0.0)),
        )


def ks_key(config: DriftConfig, n_ref: int) -> dict[str, Any]:
    return {
        "method": "ks-uniform/1",
        "n_ref": int(n_ref),
        "floor": config.ks_floor,
        **config.alarm_key(),
    }


def g_key(config: DriftConfig, ref_counts: np.ndarray) -> dict[str, Any]:
    counts = [int(c) for c in np.asarray(ref_counts) if c > 0]
    return {
        "method": "g-bootstrap/1",
        "ref_counts": counts,
        "floor": config.js_floor,
        **config.alarm_key(),
    }


def _seed(key: dict[str, Any], config: DriftConfig, part: int) -> np.random.SeedSequence:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).digest()
    return np.random.SeedSequence([config.calibration_seed, int.from_bytes(digest[:8]), part])


def count_events(evidence: np.ndarray, thresholds: np.ndarray, config: DriftConfig) -> np.ndarray:
    """OPEN events per threshold when (streams, checks) evidence runs through the alert machine."""
    events = np.zeros(thresholds.size, dtype=np.int64)
    live = thresholds < evidence.max(initial=0.0)  # higher thresholds never open
    grid = thresholds[live][:, None]
    if not grid.size:
        return events
    machine = AlertMachine(
        (grid.size, evidence.shape[0]),
        config.persistence,
        config.resolve_ratio,
        config.resolve_after,
        config.cooldown,
    )
    counts = np.zeros(grid.size, dtype=np.int64)
    lowest = float(grid.min())
    peaks = evidence.max(axis=0)
    busy = False
    for check in range(evidence.shape[1]):
        if not busy and peaks[check] <= lowest:
            continue  # every series idle with a zero streak stays so: same as stepping
        opened, _ = machine.step(evidence[None, :, check], grid, config.check_every)
        counts += opened.sum(axis=1)
        busy = bool(machine.phase.any() or machine.streak.any())
    events[live] = counts
    return events


# (rng, streams, reference rows, stream rows) -> (references, streams) of continuous values
NullDraw = Callable[[np.random.Generator, int, int, int], tuple[np.ndarray, np.ndarray]]


def uniform_draw(
    rng: np.random.Generator, streams: int, n_ref: int, total: int
) -> tuple[np.ndarray, np.ndarray]:
    return rng.random((streams, n_ref)), rng.random((streams, total))


def simulate_ks_evidence(
    config: DriftConfig,
    n_ref: int,
    streams: int,
    checks: int,
    rng: np.random.Generator,
    level: float = 0.0,
    draw: NullDraw = uniform_draw,
) -> np.ndarray:
    """(streams, checks) per-check evidence of null streams, one reference each.

    `draw` makes the data: independent uniforms by default (the iid null), or block-bootstrap
    resamples of an ordered sample (dependent streams, see pipeline.drift.dependence).
    Exact wherever evidence >= `level` (lazy windows below it: see KSWindows).
    """
    k = config.check_every
    warm = config.w_max
    total = warm + checks * k
    reference, values = draw(rng, streams, n_ref, total)
    reference = np.sort(reference, axis=1)
    codes = np.empty((streams, total), dtype=code_dtype(n_ref))
    shift = code_shift(n_ref)
    for s in range(streams):  # continuous: never equal to a reference value, so R - L = 0
        codes[s] = np.searchsorted(reference[s], values[s]) << shift

    def distance(sorted_codes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return ks_distance_sorted(sorted_codes, n_ref)

    windows = KSWindows(streams, config.windows, n_ref, distance)
    windows.push(codes[:, :warm])
    evidence = np.empty((streams, checks), dtype=np.float64)
    for check in range(checks):
        start = warm + check * k
        windows.push(codes[:, start : start + k])
        z, dist, _ = windows.evaluate(level)
        evidence[:, check] = np.where(dist >= config.ks_floor, z, 0.0).max(axis=0)
    return evidence


def simulate_g_evidence(
    config: DriftConfig,
    ref_counts: np.ndarray,
    streams: int,
    checks: int,
    rng: np.random.Generator,
    draw: NullDraw | None = None,
) -> np.ndarray:
    """(streams, checks) evidence of null categorical streams, both samples bootstrapped.

    By default the reference counts are multinomial and the rows independent draws from
    `ref_counts`' shares; `draw` (a CategoricalNull's) gives block resamples of an ordered
    sample instead: `(rng, streams, n_ref, total) -> (reference counts, codes)`.
    """
    counts = np.asarray(ref_counts, dtype=np.float64)
    counts = counts[counts > 0]
    n_ref = int(counts.sum())
    k, warm = config.check_every, config.w_max
    total = warm + checks * k
    if draw is None:
        probs = counts / n_ref
        boot = rng.multinomial(n_ref, probs, size=streams).astype(np.float64)  # (streams, C)
        cdf = np.cumsum(probs)
        cdf[-1] = 1.0
        codes = np.searchsorted(cdf, rng.random((streams, total)), side="right")
    else:
        boot, codes = draw(rng, streams, n_ref, total)
    categories = boot.shape[1]
    cumulative = np.zeros((streams, total + 1, categories), dtype=np.int32)
    for c in range(categories):
        np.cumsum(codes == c, axis=1, out=cumulative[:, 1:, c])
    ends = warm + k * np.arange(1, checks + 1)
    evidence = np.zeros((streams, checks))
    for width in config.windows:
        window = (cumulative[:, ends, :] - cumulative[:, ends - width, :]).astype(np.float64)
        g, js = g_test(boot[:, None, :], window)
        evidence = np.maximum(evidence, np.where(js >= config.js_floor, np.sqrt(g), 0.0))
    return evidence


_KS_STREAMS, _KS_CHECKS = 64, 1500  # one simulation part: streams x checks


def ks_part_rows(config: DriftConfig) -> int:
    return _KS_STREAMS * _KS_CHECKS * config.check_every


def ks_null_curve(
    config: DriftConfig,
    n_ref: int,
    parts: range,
    key: dict[str, Any] | None = None,
    draw: NullDraw = uniform_draw,
) -> NullCurve:
    """Null curve from simulation parts (each seeded by its index: parts can run anywhere and
    their curves be merged)."""
    key = ks_key(config, n_ref) if key is None else key
    started = time.perf_counter()
    events = np.zeros(KS_GRID.size, dtype=np.int64)
    rows = 0
    for part in parts:
        rng = np.random.default_rng(_seed(key, config, part))
        evidence = simulate_ks_evidence(
            config,
            n_ref,
            _KS_STREAMS,
            _KS_CHECKS,
            rng,
            level=config.resolve_ratio * float(KS_GRID[0]),
            draw=draw,
        )
        events += count_events(evidence, KS_GRID, config)
        rows += ks_part_rows(config)
    return NullCurve("KS", key, KS_GRID, events, rows, time.perf_counter() - started)


class Calibrator:
    """Null curves from the shipped set, the cache directory, or a fresh simulation."""

    def __init__(self, cache_dir: Path | None = None, *, use_shipped: bool = True) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_shipped = use_shipped

    # ---- thresholds -------------------------------------------------------------------------

    def ks_threshold(
        self,
        config: DriftConfig,
        n_ref: int,
        n_features: int,
        dependence: DependentNull | None = None,
    ) -> float:
        """Shared KS threshold; from block-bootstrap streams of `dependence`'s sample if given."""
        per_feature = config.target_ert * max(n_features, 1)
        if dependence is None:
            return self.ks_curve(config, n_ref, per_feature).threshold_for(per_feature)
        return self.bootstrap_curve(config, n_ref, dependence, per_feature).threshold_for(
            per_feature
        )

    def bootstrap_curve(
        self, config: DriftConfig, n_ref: int, dependence: DependentNull, rows_per_event: float
    ) -> NullCurve:
        key = {**ks_key(config, n_ref), **dependence.key()}
        cached = self._load(NullCurve("KS", key, KS_GRID, KS_GRID * 0, 0).name, key)
        if cached is not None and cached.covers(rows_per_event):
            return cached
        parts = -(-self._budget(config, rows_per_event) // ks_part_rows(config))
        curve = ks_null_curve(config, n_ref, range(parts), key, dependence.draw)
        log.info(
            "KS block-bootstrap calibration %s: %d rows in %.1fs", key, curve.rows, curve.seconds
        )
        self._store(curve)
        return curve

    def g_threshold(
        self,
        config: DriftConfig,
        ref_counts: np.ndarray,
        n_features: int,
        dependence: CategoricalNull | None = None,
    ) -> float:
        """One categorical feature's threshold; from block-bootstrap streams of `dependence`'s
        ordered codes if given (its counts then stand in for `ref_counts`'s shares)."""
        per_feature = config.target_ert * max(n_features, 1)
        return self.g_curve(config, ref_counts, per_feature, dependence).threshold_for(
            per_feature
        )

    # ---- curves -----------------------------------------------------------------------------

    def ks_curve(self, config: DriftConfig, n_ref: int, rows_per_event: float) -> NullCurve:
        key = ks_key(config, n_ref)
        cached = self._load(NullCurve("KS", key, KS_GRID, KS_GRID * 0, 0).name, key)
        if cached is not None and cached.covers(rows_per_event):
            return cached
        curve = self._simulate_ks(config, n_ref, key, rows_per_event)
        self._store(curve)
        return curve

    def g_curve(
        self,
        config: DriftConfig,
        ref_counts: np.ndarray,
        rows_per_event: float,
        dependence: CategoricalNull | None = None,
    ) -> NullCurve:
        key = g_key(config, ref_counts)
        if dependence is not None:
            key = {**key, **dependence.key()}
        name = NullCurve("G", key, KS_GRID, KS_GRID * 0, 0).name
        cached = self._load(name, key)
        if cached is not None and cached.covers(rows_per_event):
            return cached
        draw = None if dependence is None else dependence.draw
        curve = self._simulate_g(config, key, rows_per_event, draw)
        if dependence is not None:
            log.info(
                "G block-bootstrap calibration %s: %d rows in %.1fs", key, curve.rows, curve.seconds
            )
        self._store(curve)
        return curve

    def _budget(self, config: DriftConfig, rows_per_event: float) -> int:
        if config.calibration_rows is not None:
            return int(config.calibration_rows)
        # ~60 false alarms expected at the answer: about +-10% on the resulting ERT
        return int(min(max(60.0 * rows_per_event, 1_000_000), _MAX_ROWS))

    def _simulate_ks(
        self, config: DriftConfig, n_ref: int, key: dict[str, Any], rows_per_event: float
    ) -> NullCurve:
        parts = -(-self._budget(config, rows_per_event) // ks_part_rows(config))
        curve = ks_null_curve(config, n_ref, range(parts))
        log.info("KS calibration %s: %d rows in %.1fs", key, curve.rows, curve.seconds)
        return curve

    def _simulate_g(
        self,
        config: DriftConfig,
        key: dict[str, Any],
        rows_per_event: float,
        draw: NullDraw | None = None,
    ) -> NullCurve:
        budget = self._budget(config, rows_per_event)
        ref_counts = np.asarray(key["ref_counts"], dtype=np.float64)
        streams, checks = 64, 1000
        part_rows = streams * checks * config.check_every
        started = time.perf_counter()
        grid = np.zeros(0)
        events = np.zeros(0, dtype=np.int64)
        rows = part = 0
        while rows < budget:
            rng = np.random.default_rng(_seed(key, config, part))
            evidence = simulate_g_evidence(config, ref_counts, streams, checks, rng, draw)
            if part == 0:
                # G's scale depends on the categories: the first part sets the grid, from
                # where checks exceed ~50x as often as the target alarm rate (plenty of
                # events) to well past its largest value
                share = min(0.5, 50.0 * config.check_every / rows_per_event)
                low = float(np.quantile(evidence, 1.0 - share))
                high = 1.5 * float(evidence.max()) + 1.0
                grid = np.round(np.linspace(low, high, 241), 6)
                events = np.zeros(grid.size, dtype=np.int64)
            events += count_events(evidence, grid, config)
            rows += part_rows
            part += 1
        return NullCurve("G", key, grid, events, rows, time.perf_counter() - started)

    # ---- storage ----------------------------------------------------------------------------

    def _load(self, name: str, key: dict[str, Any]) -> NullCurve | None:
        places = [self.cache_dir / f"{name}.json"]
        if self.use_shipped:
            places.insert(0, SHIPPED_DIR / f"{name}.json")
        best: NullCurve | None = None
        for path in places:
            try:
                curve = NullCurve.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError):
                continue
            if curve.key == key and (best is None or curve.rows > best.rows):
                best = curve
        return best

    def _store(self, curve: NullCurve) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            path = self.cache_dir / f"{curve.name}.json"
            # write-then-rename: concurrent workers never read a half-written file
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                json.dump(curve.to_json(), handle)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only cache only costs a recalibration next start
            log.warning("could not cache calibration %s: %s", curve.name, exc)
