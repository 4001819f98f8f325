"""What the demo reports: answers counted per request of this run, "behind", the summary."""

from __future__ import annotations

import io

from rich.console import Console

from pipeline.demo.metrics import BehindTracker, DemoStats, fmt
from pipeline.demo.view import behind_line, render, summary


def _stats(produced: int, scored: int, dead: int = 0) -> DemoStats:
    stats = DemoStats()
    ids = [f"r{i}" for i in range(produced)]
    stats.produced_ids.update(ids)
    stats.produced.add(produced)
    for rid in ids[:scored]:
        assert stats.answer(rid)
        stats.add_result(10.0, "approve")
    for rid in ids[scored : scored + dead]:
        assert stats.answer(rid)
        stats.dead_letters += 1
    return stats


def _text(renderable: object) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_only_first_answers_to_this_runs_requests_count() -> None:
    stats = _stats(3, 1)
    assert not stats.answer("r0")  # a duplicate
    assert not stats.answer("from-an-earlier-run")
    assert not stats.answer(None)  # a dead letter without a request id
    assert (stats.duplicates, stats.foreign, stats.results.total, stats.lag) == (1, 2, 1, 2)


def test_summary_when_everything_was_scored() -> None:
    stats = _stats(100, 98, dead=2)
    assert stats.complete
    text = summary(stats, 10.0)
    assert "produced 100, scored 98, dead letters 2" in text
    assert "everything produced was scored: 100 of 100 answered" in text
    assert "NOT" not in text and "nan" not in text


def test_summary_says_clearly_when_not_everything_was_scored() -> None:
    stats = _stats(1000, 700, dead=50)
    assert not stats.complete and stats.lag == 250
    text = summary(stats, 10.0)
    assert "NOT EVERYTHING WAS SCORED: 250 of 1,000 produced requests" in text
    assert "everything produced was scored" not in text


def test_a_producing_failure_is_not_complete() -> None:
    stats = _stats(10, 10)
    stats.produce_error = "DeliveryFailed: 3 requests undelivered"
    assert not stats.complete
    assert "PRODUCING FAILED" in summary(stats, 1.0)


def test_no_results_shows_dashes_never_nan() -> None:
    stats = _stats(500, 0)
    text = summary(stats, 5.0) + _text(render(stats, 1.0, 60.0))
    assert "nan" not in text.lower()
    assert "- (no results)" in text and "mean batch size -" in text


def test_fmt() -> None:
    assert fmt(float("nan")) == "-" and fmt(float("inf")) == "-" and fmt(1234.5) == "1,234.5"
    assert fmt(0.0123, ".2%") == "1.23%"


def test_behind_only_after_the_lag_stays_over_the_threshold_for_a_while() -> None:
    tracker = BehindTracker(rate=2000, threshold_s=2.0, for_s=3.0)
    assert tracker.threshold == 4000
    assert not tracker.update(3999, now=0.0)
    assert not tracker.update(5000, now=1.0)  # over, but only just now
    assert not tracker.update(5000, now=3.9)
    assert tracker.update(6000, now=4.0)  # 3 s over the threshold: fell behind, once
    assert tracker.behind and not tracker.update(7000, now=5.0)
    assert not tracker.update(100, now=6.0) and not tracker.behind  # caught up
    assert not tracker.update(5000, now=7.0)
    assert tracker.update(5000, now=10.0)
    assert (tracker.episodes, tracker.worst_lag) == (2, 7000)


def test_a_short_spike_is_not_behind() -> None:
    tracker = BehindTracker(rate=2000)
    for i in range(10):  # over for 2 s, under, over again: never 3 s in a row
        assert not tracker.update(9000 if i % 5 < 4 else 0, now=i * 0.5)
    assert tracker.episodes == 0


def test_low_rates_have_a_floor_of_events() -> None:
    assert BehindTracker(rate=10).threshold == 500


def test_behind_is_shown_live_and_in_the_summary() -> None:
    stats = _stats(20_000, 5_000)
    tracker = BehindTracker(rate=2000)
    tracker.update(stats.lag, now=0.0)
    assert tracker.update(stats.lag, now=3.0)
    assert "worker is BEHIND" in _text(render(stats, 10.0, 60.0, behind=tracker))
    line = behind_line(stats, 2000)
    assert "falling behind: 15,000 produced requests" in line and "7.5 s" in line
    assert "fell behind 1 time(s); largest backlog 15,000" in summary(stats, 10.0, tracker)


def test_not_behind_is_not_shown() -> None:
    stats = _stats(100, 100)
    assert "BEHIND" not in _text(render(stats, 1.0, 60.0, behind=BehindTracker(rate=2000)))


def test_a_producer_short_of_the_requested_rate_is_reported() -> None:
    stats = _stats(5000, 5000)
    stats.produce_s = 1.0
    assert "reached only 5,000 of the requested 15,000 requests/s" in summary(
        stats, 2.0, requested_rate=15_000
    )
    assert "reached only" not in summary(stats, 2.0, requested_rate=5_200)
