"""Data and measurements for the drift benchmark (inferstream's detector side)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.drift import DriftConfig, DriftDetector, Reference

PRE_ROWS = 2000  # stationary rows before a change (fills every window)
CHANGE_SPREAD = 1000  # the change lands uniformly in [PRE_ROWS, PRE_ROWS + CHANGE_SPREAD)


@dataclass(frozen=True)
class Scenario:
    name: str
    feature: int
    shift: float  # added to the changed feature after the change
    scale: float  # multiplies the changed feature after the change
    post_rows: int  # rows after the change before the run counts as missed


SHIFT = Scenario("mean +0.5 sd", 0, 0.5, 1.0, 3000)
VARIANCE = Scenario("variance 1 -> 1.5", 0, 0.0, 1.5, 6000)


def names(d: int) -> list[str]:
    return [f"x{j:02d}" for j in range(d)]


def reference(seed: int, n_ref: int, d: int) -> np.ndarray:
    return np.random.default_rng([seed, 0]).standard_normal((n_ref, d)).astype(np.float32)


def stationary_chunks(seed: int, rows: int, d: int, chunk: int = 100_000):
    rng = np.random.default_rng([seed, 1])
    done = 0
    while done < rows:
        size = min(chunk, rows - done)
        yield rng.standard_normal((size, d)).astype(np.float32)
        done += size


def change_run(seed: int, d: int, scenario: Scenario) -> tuple[np.ndarray, int]:
    """(rows, change index): stationary, then the scenario's change from the change index on."""
    rng = np.random.default_rng([seed, 2])
    change = PRE_ROWS + int(rng.integers(0, CHANGE_SPREAD))
    rows = rng.standard_normal((change + scenario.post_rows, d)).astype(np.float32)
    j = scenario.feature
    rows[change:, j] = rows[change:, j] * scenario.scale + scenario.shift
    return rows, change


def make_detector(ref: np.ndarray, cache: Path | None, config: DriftConfig) -> DriftDetector:
    return DriftDetector(Reference.from_rows(ref, names(ref.shape[1])), config, cache)


def count_false_alarms(
    seed: int, rows: int, n_ref: int, d: int, batch: int, cache: Path | None, config: DriftConfig
) -> dict:
    """OPEN events on a stationary stream (every one is false)."""
    detector = make_detector(reference(seed, n_ref, d), cache, config)
    opens = 0
    for chunk in stationary_chunks(seed, rows, d):
        for start in range(0, chunk.shape[0], batch):
            for event in detector.update(chunk[start : start + batch]):
                opens += event.state == "OPEN"
    return {"seed": seed, "rows": rows, "opens": opens}


def detection_delay(
    seed: int,
    n_ref: int,
    d: int,
    scenario: Scenario,
    batch: int,
    cache: Path | None,
    config: DriftConfig,
) -> dict:
    """Rows after the change until the changed feature's alert opens (None: missed).

    The alert opens at the check it fires at (`rows_seen`: checks run every K rows inside a
    batch); `published` is counted to the end of the batch that returned it instead (the rows
    that had arrived by the time the alert could be sent).
    """
    rows, change = change_run(seed, d, scenario)
    detector = make_detector(reference(seed, n_ref, d), cache, config)
    feature = names(d)[scenario.feature]
    delay = published = None
    false_before = 0
    for start in range(0, rows.shape[0], batch):
        events = detector.update(rows[start : start + batch])
        end = min(start + batch, rows.shape[0])
        for event in events:
            if event.state != "OPEN":
                continue
            if event.feature == feature and event.rows_seen > change:
                delay, published = event.rows_seen - change, end - change
            elif event.rows_seen <= change:
                false_before += 1
        if delay is not None:
            break
    return {
        "seed": seed,
        "change": change,
        "delay": delay,
        "published": published,
        "false_before": false_before,
    }


def throughput(
    n_ref: int,
    d: int,
    batch: int,
    rows: int,
    cache: Path | None,
    config: DriftConfig,
    repeats: int = 3,
) -> float:
    """Best of `repeats` rows/s for update() on stationary data with full windows.

    Timed in CPU seconds of this process (one core): on a shared machine wall time measures
    the neighbours as much as the detector.
    """
    data = np.random.default_rng(7).standard_normal((rows + config.w_max, d)).astype(np.float32)
    best = 0.0
    for _ in range(repeats):
        detector = make_detector(reference(7, n_ref, d), cache, config)
        detector.update(data[: config.w_max])
        started = time.process_time()
        for start in range(config.w_max, data.shape[0], batch):
            detector.update(data[start : start + batch])
        best = max(best, rows / max(time.process_time() - started, 1e-9))
    return best


def summarise_delays(results: list[dict]) -> dict:
    found = [r["delay"] for r in results if r["delay"] is not None]
    out: dict = {"runs": len(results), "detected": len(found)}
    if found:
        out.update(
            median=float(np.median(found)),
            p90=float(np.quantile(found, 0.9)),
            max=int(max(found)),
        )
    sent = [r["published"] for r in results if r.get("published") is not None]
    if sent:
        out.update(
            published_median=float(np.median(sent)), published_p90=float(np.quantile(sent, 0.9))
        )
    out["false_alarms_before_change"] = int(sum(r.get("false_before", 0) for r in results))
    return out


# ---- dependent streams ----------------------------------------------------------------------


def ar1(seed: int, rows: int, d: int, phi: float) -> np.ndarray:
    """Stationary AR(1) rows with N(0, 1) marginals: x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t."""
    rng = np.random.default_rng([seed, 3])
    noise = rng.standard_normal((rows, d)) * np.sqrt(1.0 - phi * phi)
    out = np.empty((rows, d))
    out[0] = rng.standard_normal(d)
    # lfilter-free recursion in blocks: x_t = phi^k x_{t-k} + sum; a plain loop over rows is
    # fast enough for a few hundred thousand rows of 20 features
    for t in range(1, rows):
        out[t] = phi * out[t - 1] + noise[t]
    return out.astype(np.float32)


def ar1_false_alarms(
    seed: int,
    rows: int,
    n_ref: int,
    d: int,
    phi: float,
    calibration: str,
    cache: Path | None,
    config: DriftConfig,
    batch: int = 256,
) -> dict:
    """OPEN events on a stationary AR(1) stream; the reference is an AR(1) stretch in arrival
    order (the model's reference window as recorded), the sample the bootstrap resamples."""
    reference = Reference.from_rows(ar1(seed, n_ref, d, phi), names(d))
    stream = ar1(seed + 10_000, rows, d, phi)
    return _stationary_opens(seed, reference, stream, calibration, cache, config, batch)


def _stationary_opens(
    seed: int,
    reference: Reference,
    stream: np.ndarray,
    calibration: str,
    cache: Path | None,
    config: DriftConfig,
    batch: int,
) -> dict:
    """OPEN events (all false) of a detector calibrated `calibration`-wise on `stream`."""
    from dataclasses import replace

    detector = DriftDetector(reference, replace(config, calibration=calibration), cache)
    opens = 0
    for start in range(0, stream.shape[0], batch):
        opens += sum(e.state == "OPEN" for e in detector.update(stream[start : start + batch]))
    return {
        "seed": seed,
        "rows": int(stream.shape[0]),
        "opens": opens,
        "threshold": float(detector.thresholds.mean()),
        "calibration": detector.calibration[0],
    }


SHARES = np.array([0.5, 0.3, 0.2])  # the sticky categorical features' category shares


def sticky_categories(seed: int, rows: int, d: int, stay: float) -> np.ndarray:
    """d categorical features (codes 0-2, SHARES) each repeating its previous row's category
    with probability `stay`, else a fresh draw: bursts like a card's run of one channel."""
    rng = np.random.default_rng([seed, 9])
    fresh = rng.choice(SHARES.size, size=(rows, d), p=SHARES)
    keep = rng.random((rows, d)) < stay
    out = np.empty((rows, d), dtype=np.float32)
    out[0] = fresh[0]
    for t in range(1, rows):
        out[t] = np.where(keep[t], out[t - 1], fresh[t])
    return out


def sticky_false_alarms(
    seed: int,
    rows: int,
    n_ref: int,
    d: int,
    stay: float,
    calibration: str,
    cache: Path | None,
    config: DriftConfig,
    batch: int = 256,
) -> dict:
    """OPEN events on stationary sticky categorical streams (G tests); the reference is a
    stretch of the same chain in arrival order."""
    labels = names(d)
    reference = Reference.from_rows(sticky_categories(seed, n_ref, d, stay), labels, labels)
    stream = sticky_categories(seed + 10_000, rows, d, stay)
    return _stationary_opens(seed, reference, stream, calibration, cache, config, batch)


# ---- time of day ----------------------------------------------------------------------------

# the fraud generator's hourly traffic profile
HOURLY = np.array([
    0.25, 0.15, 0.10, 0.08, 0.08, 0.15, 0.35, 0.65, 0.95, 1.05, 1.10, 1.25,
    1.45, 1.35, 1.15, 1.10, 1.15, 1.30, 1.45, 1.40, 1.20, 0.95, 0.70, 0.45,
])  # fmt: skip
ROWS_PER_DAY = 2000
NIGHT_SHARE = 0.1  # share of each day's traffic moved into 00:00-05:00 by the injection


def diurnal_hours(seed: int, days: int, night_share: float = 0.0, from_day: int = 0):
    rng = np.random.default_rng([seed, 4])
    out = []
    for day in range(days):
        n = rng.poisson(ROWS_PER_DAY)
        hours = rng.choice(24, n, p=HOURLY / HOURLY.sum()) + rng.random(n)
        if day >= from_day and night_share:
            moved = rng.random(n) < night_share
            hours[moved] = rng.random(int(moved.sum())) * 5.0
        out.append(np.sort(hours))
    return np.concatenate(out)


def diurnal_run(seed: int, night: bool, tests: int = 21) -> dict:
    """Alerts of the time-of-day watch: 20,000 stationary rows, or a night shift from day 4."""
    from pipeline.drift.diurnal import DiurnalWatch

    rng = np.random.default_rng([seed, 5])
    reference = rng.choice(24, 5000, p=HOURLY / HOURLY.sum()) + rng.random(5000)
    watch = DiurnalWatch(reference, "bench", DriftConfig(), tests=tests)
    if night:
        hours = diurnal_hours(seed, 8, NIGHT_SHARE, from_day=4)
        change = int(np.searchsorted(np.cumsum(np.diff(hours) < -12), 4)) + 1  # day 4's start
    else:
        hours, change = diurnal_hours(seed, 11)[:20_000], None
    opens, delay = 0, None
    for start in range(0, hours.size, 256):
        for event in watch.update(hours[start : start + 256]):
            if event.state == "OPEN":
                opens += 1
                if change is not None and delay is None and event.rows_seen > change:
                    delay = event.rows_seen - change
    return {"seed": seed, "rows": int(hours.size), "opens": opens, "delay": delay}


# ---- the engine's two workers ---------------------------------------------------------------


def worker_rates(rows: int = 20_000, batch: int = 256) -> dict:
    """Flat-out rows/s (CPU time, one process) of the fraud stream's per-batch work.

    shared: request decode is left out (both workers do it); `features` is the plug-in's
    preprocessing (both do it too); `score` is ONNX Runtime on the model (the scoring worker's
    own work); `drift` is the detector update on the monitored columns (the drift worker's).
    """
    from pipeline.config import REPO_ROOT
    from pipeline.core.registry import get_plugin
    from pipeline.drift.config import config_for_reference
    from pipeline.drift.monitor import monitored_columns, reference_for
    from pipeline.models.manifest import resolve_model_dir
    from pipeline.models.runtime import load_model
    from pipeline.streams.fraud.generator import TransactionGenerator

    plugin = get_plugin("fraud")
    directory = resolve_model_dir(REPO_ROOT / "models", "fraud")
    model = load_model(directory, providers=["CPUExecutionProvider"], warmup_rows=0)
    preprocess = plugin.preprocessor(model.manifest, directory)
    records = TransactionGenerator(seed=8).generate(rows).records
    out: dict = {"batch": batch, "rows": rows}
    started = time.process_time()
    matrices = [preprocess(records[i : i + batch]).matrix for i in range(0, rows, batch)]
    out["features_rows_per_s"] = rows / (time.process_time() - started)
    model.predict(matrices[0])
    started = time.process_time()
    for matrix in matrices:
        model.predict(matrix)
    out["score_rows_per_s"] = rows / (time.process_time() - started)
    columns = monitored_columns(model.manifest.feature_names, plugin.drift_exempt)
    # as the drift worker configures it (block bootstrap when the reference is in arrival order)
    config = config_for_reference(model.manifest.reference.order)
    detector = DriftDetector(reference_for(model, columns), config)
    detector.update(np.concatenate(matrices[:5])[:, columns])
    started = time.process_time()
    for matrix in matrices:
        detector.update(matrix[:, columns])
    out["drift_rows_per_s"] = rows / (time.process_time() - started)
    out["drift_features"] = int(columns.size)
    return out
