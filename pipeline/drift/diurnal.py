"""Time of day, watched: the day's hour-of-day distribution against the reference's.

A window of a few hundred rows spans minutes, so the hour features cannot be compared with a
reference that spans days row by row (they would alarm all day). What can be compared is a
whole day: once the hour has gone round (a row before 06:00 after one at or past 18:00 since
the last wrap, so a few late rows around midnight do not split a day), the completed day's rows
are counted per hour bucket and G-tested against the reference's buckets. A shift of traffic
into the night, a classic pattern of abuse, moves mass between buckets and is seen at the end of
the day it happens in; a stationary diurnal stream has the reference's profile every day.

The threshold: under the null the day's counts are multinomial with the reference's shares, so
G ~ chi2(buckets - 1); one check per day, the level is set so that this one test adds one false
alarm per `target_ert x tests` rows (as much as any monitored feature). Real days are
overdispersed against that (per-card bursts cluster a day's hours: on the synthetic card generator a
stationary day's z is ~4.4 where chi2(11) gives ~3.3), so the decision rests on the effect-size
floor: JS >= `js_floor` (0.1; stationary generator days reach ~0.06, moving 10 % of a day's
traffic into 00:00-05:00 gives ~0.15, 5 % ~0.09).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from pipeline.drift.alerts import AlertEvent, AlertState, DriftTest, FeatureEvidence, Severity
from pipeline.drift.categorical import g_test
from pipeline.drift.config import DriftConfig

FEATURE = "hour_of_day"
LATE, EARLY = 18.0, 6.0  # a day ends when the hour drops below EARLY after reaching LATE


def hours_from_cyclic(sin: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Hour of day in [0, 24) from its unit-circle encoding (sin, cos of 2 pi h / 24)."""
    angle = np.arctan2(np.asarray(sin, dtype=np.float64), np.asarray(cos, dtype=np.float64))
    return np.mod(angle * 24.0 / (2.0 * np.pi), 24.0)


@dataclass(frozen=True)
class DiurnalStat:
    feature: str
    z: float
    statistic: float
    threshold: float
    days: int
    state: str


class DiurnalWatch:
    """Completed days' hour-of-day counts G-tested against the reference's (see module doc)."""

    def __init__(
        self,
        reference_hours: np.ndarray,
        reference_version: str,
        config: DriftConfig | None = None,
        tests: int = 1,
        buckets: int = 12,
        js_floor: float = 0.1,
        js_major: float = 0.2,
    ) -> None:
        if buckets not in (2, 3, 4, 6, 8, 12, 24, 48):
            raise ValueError(f"hour buckets must divide the day evenly, got {buckets}")
        if not 0 < js_floor <= js_major <= 1:
            raise ValueError(
                f"diurnal JS floor {js_floor} and major {js_major} must be 0 < f <= m <= 1"
            )
        self.config = config or DriftConfig()
        self.js_floor, self.js_major = float(js_floor), float(js_major)
        self.buckets = int(buckets)
        self.tests = max(int(tests), 1)
        self.reference_version = reference_version
        hours = np.asarray(reference_hours, dtype=np.float64)
        self.ref_counts = np.bincount(self._bucket(hours), minlength=self.buckets).astype(float)
        self.rows_seen = 0
        self.day_counts = np.zeros(self.buckets, dtype=np.int64)
        self.started = False  # a wrap was seen: the day being counted is whole
        self.late = False  # the hour reached LATE since the last wrap
        self.open = False
        self.last_z = 0.0
        self.days = 0
        self.last: tuple[float, float, float] = (0.0, 0.0, 0.0)  # z, JS, threshold
        self._first_offset = self._last_offset = -1
        self._first_ms = self._last_ms = 0

    def _bucket(self, hours: np.ndarray) -> np.ndarray:
        return np.minimum((hours * self.buckets / 24.0).astype(np.int64), self.buckets - 1)

    def update(
        self,
        hours: np.ndarray,
        offsets: np.ndarray | None = None,
        timestamps_ms: np.ndarray | None = None,
    ) -> list[AlertEvent]:
        """Add a batch of hours of day; returns the alert transitions of the days it completes."""
        hours = np.asarray(hours, dtype=np.float64).ravel()
        count = hours.size
        offsets = np.full(count, -1) if offsets is None else np.asarray(offsets).ravel()
        stamps = np.zeros(count) if timestamps_ms is None else np.asarray(timestamps_ms).ravel()
        late_at = np.flatnonzero(hours >= LATE)
        early_at = np.flatnonzero(hours < EARLY)
        events: list[AlertEvent] = []
        pos = 0
        while pos < count:
            if not self.late:  # the next row at or past LATE
                nxt = late_at[np.searchsorted(late_at, pos) :]
                cut = int(nxt[0]) if nxt.size else count
                self._count(hours[pos:cut], offsets[pos:cut], stamps[pos:cut])
                if cut < count:
                    self.late = True
                pos = cut
                continue
            nxt = early_at[np.searchsorted(early_at, pos) :]  # the wrap: the next early row
            cut = int(nxt[0]) if nxt.size else count
            self._count(hours[pos:cut], offsets[pos:cut], stamps[pos:cut])
            if cut < count:
                if self.started:
                    events += self._check()
                self.started, self.late = True, False
                self.day_counts[:] = 0
                self._first_offset, self._first_ms = int(offsets[cut]), int(stamps[cut])
            pos = cut
        return events

    def _count(self, hours: np.ndarray, offsets: np.ndarray, stamps: np.ndarray) -> None:
        if hours.size:
            self.day_counts += np.bincount(self._bucket(hours), minlength=self.buckets)
            self.rows_seen += hours.size
            self._last_offset, self._last_ms = int(offsets[-1]), int(stamps[-1])

    def threshold(self, rows: int) -> float:
        """z = sqrt(G) level for a day of `rows` rows (one false alarm per target_ert x tests)."""
        alpha = min(0.5, rows / (self.config.target_ert * self.tests))
        return float(np.sqrt(chi2.isf(alpha, self.buckets - 1)))

    def _check(self) -> list[AlertEvent]:
        rows = int(self.day_counts.sum())
        self.days += 1
        if rows < self.buckets:
            return []  # too few rows to say anything about a day's profile
        g, js = g_test(self.ref_counts, self.day_counts.astype(float))
        z, js, level = float(np.sqrt(g)), float(js), self.threshold(rows)
        self.last = (z, js, level)
        over = z > level and js >= self.js_floor
        if not self.open and over:
            self.open, self.last_z = True, z
            state = AlertState.OPEN
        elif self.open and (z < self.config.resolve_ratio * level or js < self.js_floor):
            self.open, self.last_z = False, 0.0
            state = AlertState.RESOLVED
        elif self.open and over and z >= self.config.update_growth * self.last_z:
            self.last_z = z
            state = AlertState.UPDATE
        else:
            return []
        major = js >= self.js_major
        return [
            AlertEvent(
                reference_version=self.reference_version,
                feature=FEATURE,
                state=state,
                severity=Severity.MAJOR if major else Severity.MINOR,
                test=DriftTest.G,
                statistic=js,
                z=z,
                threshold=level,
                window=rows,
                p_value=float(chi2.sf(g, self.buckets - 1)),
                mean_shift=0.0,
                wasserstein=0.0,
                ranked_features=(FeatureEvidence(FEATURE, z, js),),
                first_offset=self._first_offset,
                last_offset=self._last_offset,
                window_start_ms=self._first_ms,
                window_end_ms=self._last_ms,
                rows_seen=self.rows_seen,
                calibration="chi2(day)",
                reference_rows=int(self.ref_counts.sum()),
                target_ert=self.config.target_ert,
                windows=(rows,),  # checked a day at a time: the day's rows are its window
            )
        ]

    def stat(self) -> DiurnalStat:
        z, js, level = self.last
        return DiurnalStat(FEATURE, z, js, level, self.days, "ALERTING" if self.open else "IDLE")

    def state(self) -> dict[str, object]:
        return {
            "rows_seen": self.rows_seen,
            "day_counts": [int(c) for c in self.day_counts],
            "started": self.started,
            "late": self.late,
            "open": self.open,
            "last_z": self.last_z,
            "days": self.days,
            "last": list(self.last),
            "first": [self._first_offset, self._first_ms],
            "last_row": [self._last_offset, self._last_ms],
        }

    def load(self, state: dict) -> None:
        counts = np.asarray(state["day_counts"], dtype=np.int64)
        if counts.shape != (self.buckets,):
            raise ValueError("diurnal state has a different number of hour buckets")
        self.rows_seen = int(state["rows_seen"])
        self.day_counts = counts
        self.started, self.late, self.open = (
            bool(state["started"]),
            bool(state["late"]),
            bool(state["open"]),
        )
        self.last_z, self.days = float(state["last_z"]), int(state["days"])
        z, js, level = (float(x) for x in state["last"])
        self.last = (z, js, level)
        self._first_offset, self._first_ms = (int(x) for x in state["first"])
        self._last_offset, self._last_ms = (int(x) for x in state["last_row"])
