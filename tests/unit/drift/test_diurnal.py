"""Time of day watched: a shift of traffic into the night alerts, a stationary day does not."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.drift import AlertState, DriftConfig
from pipeline.drift.diurnal import DiurnalWatch, hours_from_cyclic

# the fraud generator's hourly traffic profile (low at night, peaks at noon and evening)
PROFILE = np.array([
    0.25, 0.15, 0.10, 0.08, 0.08, 0.15, 0.35, 0.65, 0.95, 1.05, 1.10, 1.25,
    1.45, 1.35, 1.15, 1.10, 1.15, 1.30, 1.45, 1.40, 1.20, 0.95, 0.70, 0.45,
])  # fmt: skip
ROWS_PER_DAY = 2000


def diurnal_hours(
    rng: np.random.Generator, days: int, night_share: float = 0.0, from_day: int = 0
) -> np.ndarray:
    """Arrival hours in time order: Poisson traffic with PROFILE; from `from_day` on, a
    `night_share` of each day's rows moves to 00:00-05:00."""
    out = []
    for day in range(days):
        n = rng.poisson(ROWS_PER_DAY)
        hours = rng.choice(24, n, p=PROFILE / PROFILE.sum()) + rng.random(n)
        if day >= from_day and night_share:
            moved = rng.random(n) < night_share
            hours[moved] = rng.random(moved.sum()) * 5.0
        out.append(np.sort(hours))
    return np.concatenate(out)


def reference_hours(seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 9])
    return rng.choice(24, 5000, p=PROFILE / PROFILE.sum()) + rng.random(5000)


def feed(watch: DiurnalWatch, hours: np.ndarray, batch: int = 256) -> list:
    events = []
    for start in range(0, hours.size, batch):
        events += watch.update(hours[start : start + batch])
    return events


def test_hours_from_the_unit_circle() -> None:
    hours = np.array([0.0, 5.5, 12.0, 23.9])
    angle = 2 * np.pi * hours / 24
    assert hours_from_cyclic(np.sin(angle), np.cos(angle)) == pytest.approx(hours)


@pytest.mark.parametrize("seed", range(5))
def test_stationary_diurnal_stream_raises_no_alert_in_20000_rows(seed: int) -> None:
    watch = DiurnalWatch(reference_hours(seed), "ref", DriftConfig(), tests=12)
    hours = diurnal_hours(np.random.default_rng(seed), 10)[:20_000]
    assert feed(watch, hours) == []
    assert watch.days >= 8  # whole days were tested, not skipped


@pytest.mark.parametrize("seed", range(10))
def test_a_shift_of_traffic_into_the_night_alerts_every_run(seed: int) -> None:
    watch = DiurnalWatch(reference_hours(seed), "ref", DriftConfig(), tests=12)
    hours = diurnal_hours(np.random.default_rng(seed), 8, night_share=0.1, from_day=4)
    events = feed(watch, hours)
    assert [e.state for e in events][:1] == [AlertState.OPEN]
    opened = events[0]
    assert opened.feature == "hour_of_day" and opened.test == "G"
    # seen at the end of the first shifted day (rows of days 0-4, the last one whole)
    assert opened.rows_seen <= 5.5 * ROWS_PER_DAY
    assert opened.z > opened.threshold and opened.statistic >= 0.1


def test_the_alert_resolves_when_the_night_shift_ends() -> None:
    watch = DiurnalWatch(reference_hours(1), "ref", DriftConfig(), tests=12)
    rng = np.random.default_rng(1)
    shifted = diurnal_hours(rng, 6, night_share=0.15, from_day=2)
    normal = diurnal_hours(rng, 3)
    states = [e.state for e in feed(watch, np.concatenate([shifted, normal]))]
    assert states[0] is AlertState.OPEN and states[-1] is AlertState.RESOLVED


def test_state_round_trip_continues_identically() -> None:
    hours = diurnal_hours(np.random.default_rng(3), 8, night_share=0.1, from_day=4)
    first = DiurnalWatch(reference_hours(3), "ref", DriftConfig(), tests=12)
    feed(first, hours[:7000])
    second = DiurnalWatch(reference_hours(3), "ref", DriftConfig(), tests=12)
    second.load(first.state())
    assert feed(second, hours[7000:]) == feed(first, hours[7000:])


def test_bad_bucket_count_is_one_line_error() -> None:
    with pytest.raises(ValueError, match="hour buckets must divide the day"):
        DiurnalWatch(reference_hours(0), "ref", buckets=7)
