"""Detector settings. Everything that changes the null behaviour is part of the calibration key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

CALIBRATIONS = ("auto", "iid", "block-bootstrap")


@dataclass(frozen=True)
class DriftConfig:
    """How the detector checks, alarms and reports.

    Checks run every `check_every` rows (K), at rows K, 2K, 3K, ... however the rows are
    batched: a batch of hundreds is checked at each multiple of K inside it, with the same
    decisions as if its rows had come K at a time (see KSWindows.checkpoints).

    `calibration` says how the threshold is set: "iid" simulates independent rows; "block-
    bootstrap" resamples an ordered stationary sample in blocks (pipeline.drift.dependence),
    the detector's `null_sample` or else the reference rows in their stored order; "auto"
    (default) is block-bootstrap when a null sample is given and iid otherwise.
    """

    windows: tuple[int, ...] = (100, 300, 1000)
    check_every: int = 10
    # expected rows between false alarms (all features together) on stationary data
    target_ert: float = 20_000.0
    # OPEN after this many consecutive checks over the threshold
    persistence: int = 1
    resolve_ratio: float = 0.8
    resolve_rows: int | None = None  # rows under resolve_ratio x threshold to resolve; W_max
    cooldown_rows: int | None = None  # rows after RESOLVED before the feature may OPEN; W_max
    update_growth: float = 1.2  # UPDATE when z grows by this factor since the last event...
    update_every_rows: int | None = None  # ...or after this many rows (W_max) while still over
    ks_floor: float = 0.05  # effect-size floor: KS D below this never alarms
    ks_major: float = 0.1  # D from which an alert is MAJOR
    js_floor: float = 0.05  # same for the Jensen-Shannon distance of categorical features
    js_major: float = 0.1
    categorical_max_distinct: int = 5  # numeric features with at most this many values use G
    calibration_rows: int | None = None  # simulated feature-rows; None: sized from the target
    calibration_seed: int = 20_240_601
    calibration: str = "auto"  # "auto", "iid" or "block-bootstrap"

    def __post_init__(self) -> None:
        windows = tuple(sorted({int(w) for w in self.windows}))
        object.__setattr__(self, "windows", windows)
        if not windows or windows[0] < 2:
            raise ValueError("windows must be a non-empty set of sizes >= 2")
        if self.check_every < 1 or self.persistence < 1:
            raise ValueError("check_every and persistence must be >= 1")
        if self.target_ert <= self.check_every:
            raise ValueError("target_ert must exceed check_every")
        if not 0 < self.resolve_ratio <= 1:
            raise ValueError("resolve_ratio must be in (0, 1]")
        if self.update_growth <= 1:
            raise ValueError("update_growth must be > 1")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(
                f"calibration {self.calibration!r} is not one of {', '.join(CALIBRATIONS)}"
            )

    @property
    def w_max(self) -> int:
        return self.windows[-1]

    @property
    def resolve_after(self) -> int:
        return self.w_max if self.resolve_rows is None else int(self.resolve_rows)

    @property
    def cooldown(self) -> int:
        return self.w_max if self.cooldown_rows is None else int(self.cooldown_rows)

    @property
    def update_every(self) -> int:
        return self.w_max if self.update_every_rows is None else int(self.update_every_rows)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["windows"] = list(self.windows)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "windows" in values:
            values["windows"] = tuple(values["windows"])
        return cls(**values)

    def alarm_key(self) -> dict[str, Any]:
        """The settings, besides the reference, that shape false alarms of one feature."""
        return {
            "windows": list(self.windows),
            "check_every": self.check_every,
            "persistence": self.persistence,
            "resolve_ratio": self.resolve_ratio,
            "resolve_rows": self.resolve_after,
            "cooldown_rows": self.cooldown,
        }


def config_for_reference(order: str, config: DriftConfig | None = None) -> DriftConfig:
    """The drift worker's config for a model whose reference rows are in `order`.

    A reference stored in arrival order (manifest `reference.order`, see
    pipeline.models.manifest.ReferenceSample) is an ordered stationary sample: "auto" becomes
    "block-bootstrap" on it. An explicit "iid" or "block-bootstrap" is kept as given.
    """
    config = config or DriftConfig()
    if config.calibration == "auto":
        return replace(config, calibration="block-bootstrap" if order == "arrival" else "iid")
    return config
