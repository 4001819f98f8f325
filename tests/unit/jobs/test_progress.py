"""Progress arithmetic: what is left, cost, docs/s and ETA."""

from __future__ import annotations

import pytest

from pipeline.jobs.progress import (
    JobCounts,
    RateMeter,
    estimated_total_cost,
    eta_seconds,
    format_duration,
    throughput,
)


def test_counts_add_up() -> None:
    c = JobCounts(total=100, completed=60, failed=5, deferred=10, cancelled=5, tokens=3000)
    assert c.processed == 65 and c.accounted == 80 and c.remaining == 20
    assert c.cost(0.002) == pytest.approx(6.0)
    # spent 6.0; 30 of 100 documents (remaining + deferred) still to come at the estimate
    assert estimated_total_cost(c, 0.002, estimated=20.0) == pytest.approx(6.0 + 6.0)


def test_throughput_and_eta() -> None:
    assert throughput(50, 1_000, 11_000) == pytest.approx(5.0)
    assert throughput(0, 1_000, 2_000) is None
    assert throughput(5, None, 2_000) is None
    assert throughput(5, 2_000, 2_000) is None
    assert eta_seconds(20, 5.0) == pytest.approx(4.0)
    assert eta_seconds(0, None) == 0.0
    assert eta_seconds(20, None) is None and eta_seconds(20, 0.0) is None


def test_the_rate_meter_measures_over_its_window() -> None:
    meter = RateMeter(window_s=10.0)
    assert meter.rate is None
    meter.add(0, at=0.0)
    meter.add(40, at=1.0)
    assert meter.rate == pytest.approx(40.0)
    for t in range(2, 30):  # 10 docs/s from now on: the early burst leaves the window
        meter.add(40 + 10 * (t - 1), at=float(t))
    assert meter.rate == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "?"), (4.4, "4s"), (75, "1m15s"), (3 * 3600 + 120, "3h02m")]
)
def test_durations_read_short(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
