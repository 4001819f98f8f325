"""Alert states with hysteresis, and the events that map onto drift_alert.v2.avsc."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class AlertState(StrEnum):
    OPEN = "OPEN"
    UPDATE = "UPDATE"
    RESOLVED = "RESOLVED"


class Severity(StrEnum):
    MINOR = "MINOR"
    MAJOR = "MAJOR"


class DriftTest(StrEnum):
    KS = "KS"
    G = "G"


@dataclass(frozen=True)
class FeatureEvidence:
    feature: str
    z: float
    statistic: float


@dataclass(frozen=True)
class AlertEvent:
    """One alert transition for one feature; everything in DriftAlert but stream and model."""

    reference_version: str
    feature: str
    state: AlertState
    severity: Severity
    test: DriftTest
    statistic: float  # KS D, or Jensen-Shannon distance for the G-test
    z: float
    threshold: float
    window: int
    p_value: float
    mean_shift: float  # in reference standard deviations (0 for categorical)
    wasserstein: float  # W1 between window and reference (0 for categorical)
    ranked_features: tuple[FeatureEvidence, ...]
    first_offset: int
    last_offset: int
    window_start_ms: int
    window_end_ms: int
    rows_seen: int
    # how the threshold was calibrated: "iid", "block-bootstrap(block=.., rows=..)",
    # "chi2(day)" (the time-of-day watch) or "given" (see calibration_kind)
    calibration: str = "iid"
    # the settings behind the threshold, so that the record can be read alone (0: unknown)
    reference_rows: int = 0
    target_ert: float = 0.0
    check_every: int = 0
    windows: tuple[int, ...] = ()

    def to_avro_dict(
        self, stream: str, model_name: str, model_version: str, detected_at_ms: int
    ) -> dict[str, Any]:
        """A record for drift_alert.v2.avsc."""
        kind, detail = calibration_kind(self.calibration)
        return {
            "stream": stream,
            "model_name": model_name,
            "model_version": model_version,
            "reference_version": self.reference_version,
            "feature": self.feature,
            "state": str(self.state),
            "severity": str(self.severity),
            "test": str(self.test),
            "statistic": float(self.statistic),
            "z": float(self.z),
            "threshold": float(self.threshold),
            "window": int(self.window),
            "p_value": float(self.p_value),
            "mean_shift": float(self.mean_shift),
            "wasserstein": float(self.wasserstein),
            "ranked_features": [
                {"feature": e.feature, "z": float(e.z), "statistic": float(e.statistic)}
                for e in self.ranked_features
            ],
            "first_offset": int(self.first_offset),
            "last_offset": int(self.last_offset),
            "window_start": int(self.window_start_ms),
            "window_end": int(self.window_end_ms),
            "rows_seen": int(self.rows_seen),
            "detected_at": int(detected_at_ms),
            "calibration": kind,
            "calibration_detail": detail,
            "reference_rows": int(self.reference_rows),
            "target_ert": float(self.target_ert),
            "check_every": int(self.check_every),
            "windows": [int(w) for w in self.windows],
        }


# calibration labels by the name before their parameters -> the kind drift_alert.v2 records
_KINDS = {
    "iid": "iid",
    "block-bootstrap": "block-bootstrap",
    "chi2": "time-of-day",
    "given": "given",
}


def calibration_kind(label: str) -> tuple[str, str]:
    """("block-bootstrap", "block=12, rows=5000") from "block-bootstrap(block=12, rows=5000)"."""
    name, _, rest = label.partition("(")
    kind = _KINDS.get(name.strip(), "unknown")
    detail = rest.removesuffix(")") if kind != "time-of-day" else label
    return kind, detail


@dataclass(frozen=True)
class FeatureStat:
    """Where one feature stands now (for a status command)."""

    feature: str
    test: DriftTest
    z: float  # max over full windows of the exact z
    statistic: float  # effect size in the window giving z
    window: int  # that window (0 while no window is full)
    threshold: float
    state: str  # IDLE, ALERTING or COOLDOWN
    windows: dict[int, tuple[float, float]] = field(default_factory=dict)  # w -> (z, statistic)
    calibration: str = "iid"  # how the threshold was set (see AlertEvent.calibration)


class AlertMachine:
    """Per-series alert phases, vectorised: IDLE -> ACTIVE -> COOLING -> IDLE.

    IDLE: `persistence` consecutive checks with evidence > threshold open an alert.
    ACTIVE: resolves once evidence has stayed < resolve_ratio x threshold for `resolve_rows`
    rows (hysteresis: the band between the two levels neither opens nor resolves).
    COOLING: `cooldown_rows` rows in which the series cannot open again.
    The calibration simulates false alarms with this same class, so the threshold accounts for
    the persistence rule and the dead time exactly as the detector applies them.
    """

    IDLE, ACTIVE, COOLING = 0, 1, 2
    PHASE_NAMES = ("IDLE", "ALERTING", "COOLDOWN")

    def __init__(
        self,
        shape: int | tuple[int, ...],
        persistence: int,
        resolve_ratio: float,
        resolve_rows: int,
        cooldown_rows: int,
    ) -> None:
        self.persistence = int(persistence)
        self.resolve_ratio = float(resolve_ratio)
        self.resolve_rows = int(resolve_rows)
        self.cooldown_rows = int(cooldown_rows)
        self.phase = np.zeros(shape, dtype=np.int8)
        self.streak = np.zeros(shape, dtype=np.int32)
        self.below = np.zeros(shape, dtype=np.int64)
        self.cooldown = np.zeros(shape, dtype=np.int64)

    def step(
        self, evidence: np.ndarray, threshold: np.ndarray | float, rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance one check covering `rows` new rows; returns (opened, resolved) masks."""
        over = evidence > threshold
        if not self.phase.any() and not over.any():  # the common case: all quiet
            if self.streak.any():
                self.streak[...] = 0
            nothing = np.zeros(self.phase.shape, dtype=bool)
            return nothing, nothing
        cooling = self.phase == self.COOLING
        if cooling.any():
            self.cooldown[cooling] -= rows
            done = cooling & (self.cooldown <= 0)
            self.phase[done] = self.IDLE
        idle = self.phase == self.IDLE
        self.streak = np.where(idle & over, self.streak + 1, 0).astype(np.int32)
        opened = idle & (self.streak >= self.persistence)
        active = self.phase == self.ACTIVE
        resolved = np.zeros_like(opened)
        if active.any():
            under = evidence < self.resolve_ratio * np.asarray(threshold)
            self.below = np.where(active & under, self.below + rows, 0)
            resolved = active & (self.below >= self.resolve_rows)
            if resolved.any():
                self.phase[resolved] = self.COOLING if self.cooldown_rows > 0 else self.IDLE
                self.cooldown[resolved] = self.cooldown_rows
                self.below[resolved] = 0
        if opened.any():
            self.phase[opened] = self.ACTIVE
            self.streak[opened] = 0
            self.below[opened] = 0
        return opened, resolved

    def quiet_checks(self, evidence: np.ndarray, threshold: np.ndarray | float, rows: int) -> int:
        """How many of the coming checks (rows of `evidence`, each of `rows` rows) change nothing
        but the counters: no streak, no idle or open series over the threshold (no opening, no
        update), no cooling series turning idle and no open one resolving yet. 0: step now.
        """
        if self.streak.any():
            return 0
        if not self.phase.any():  # all idle, the common case: quiet up to the first loud check
            loud_checks = (evidence > threshold).any(axis=1)
            return int(loud_checks.argmax()) if loud_checks.any() else evidence.shape[0]
        threshold = np.asarray(threshold, dtype=np.float64)
        idle = self.phase == self.IDLE
        active = self.phase == self.ACTIVE
        loud = np.flatnonzero(((evidence > threshold) & (idle | active)).any(axis=1))
        quiet = int(loud[0]) if loud.size else evidence.shape[0]
        cooling = self.phase == self.COOLING
        if cooling.any():
            # the step that takes the first cooling series to cooldown <= 0 is not quiet
            turns = -(-int(self.cooldown[cooling].min()) // int(rows)) - 1
            quiet = min(quiet, max(turns, 0))
        if quiet and active.any():
            below = self._below_run(evidence[:quiet], threshold, active, rows)
            resolving = np.flatnonzero((below >= self.resolve_rows).any(axis=1))
            if resolving.size:
                quiet = int(resolving[0])
        return quiet

    def skip(self, evidence: np.ndarray, threshold: np.ndarray | float, rows: int) -> None:
        """Advance through quiet checks (`quiet_checks`; one per row of `evidence`) at once."""
        checks = evidence.shape[0]
        if not checks or not self.phase.any():  # all idle: no counter moves
            return
        cooling = self.phase == self.COOLING
        if cooling.any():
            self.cooldown[cooling] -= checks * rows
        active = self.phase == self.ACTIVE
        if active.any():  # as `step`: open series count rows under the resolve level
            below = self._below_run(evidence, np.asarray(threshold, np.float64), active, rows)
            counted = np.zeros_like(self.below)  # 0 for the others, as `step` sets them
            counted[active] = below[-1]
            self.below = counted

    def _below_run(
        self, evidence: np.ndarray, threshold: np.ndarray, active: np.ndarray, rows: int
    ) -> np.ndarray:
        """`below` of the open series after each of these checks: (checks, open series)."""
        level = self.resolve_ratio * np.broadcast_to(threshold, active.shape)
        under = evidence[:, active] < level[active]
        index = np.arange(under.shape[0])[:, None]
        # the last check not under the level so far (-1: none), where the count restarted
        reset = np.maximum.accumulate(np.where(under, -1, index), axis=0)
        grown = self.below[active][None, :] + rows * (index + 1)
        return np.where(reset < 0, grown, rows * (index - reset))

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {
            "phase": self.phase,
            "streak": self.streak,
            "below": self.below,
            "cooldown": self.cooldown,
        }

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for name in ("phase", "streak", "below", "cooldown"):
            current = getattr(self, name)
            value = np.asarray(arrays[name], dtype=current.dtype).reshape(current.shape)
            setattr(self, name, value)
