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
    """Rows after the change until the changed feature's alert opens (None: missed)."""
    rows, change = change_run(seed, d, scenario)
    detector = make_detector(reference(seed, n_ref, d), cache, config)
    feature = names(d)[scenario.feature]
    delay = None
    false_before = 0
    for start in range(0, rows.shape[0], batch):
        events = detector.update(rows[start : start + batch])
        end = min(start + batch, rows.shape[0])
        for event in events:
            if event.state != "OPEN":
                continue
            if event.feature == feature and end > change:
                delay = end - change
            elif end <= change:
                false_before += 1
        if delay is not None:
            break
    return {"seed": seed, "change": change, "delay": delay, "false_before": false_before}


def throughput(
    n_ref: int,
    d: int,
    batch: int,
    rows: int,
    cache: Path | None,
    config: DriftConfig,
    repeats: int = 3,
) -> float:
    """Best of `repeats` rows/s for update() on stationary data with full windows."""
    data = np.random.default_rng(7).standard_normal((rows + config.w_max, d)).astype(np.float32)
    best = 0.0
    for _ in range(repeats):
        detector = make_detector(reference(7, n_ref, d), cache, config)
        detector.update(data[: config.w_max])
        started = time.perf_counter()
        for start in range(config.w_max, data.shape[0], batch):
            detector.update(data[start : start + batch])
        best = max(best, rows / (time.perf_counter() - started))
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
    out["false_alarms_before_change"] = int(sum(r.get("false_before", 0) for r in results))
    return out
