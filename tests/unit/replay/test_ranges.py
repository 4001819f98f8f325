"""Parsing what range to replay: times (absolute, relative) and offsets, with clear errors."""

from __future__ import annotations

import pytest

from pipeline.replay.exceptions import ReplayError
from pipeline.replay.ranges import OffsetRange, offset_ranges, parse_time, time_range

NOW = 1_796_130_000_000  # 2026-12-01T...Z


def test_relative_absolute_and_now() -> None:
    assert parse_time("now", NOW) == NOW
    assert parse_time("-10m", NOW) == NOW - 600_000
    assert parse_time("-1.5h", NOW) == NOW - 5_400_000
    assert parse_time("-250ms", NOW) == NOW - 250
    assert parse_time("2026-12-01T00:00:00Z", NOW) == 1_796_083_200_000
    assert parse_time("2026-12-01T01:00:00+01:00", NOW) == 1_796_083_200_000
    assert parse_time("2026-12-01T00:00:00", NOW) == 1_796_083_200_000  # no offset: UTC


def test_a_range_ends_now_unless_told_and_never_in_the_future() -> None:
    assert time_range("-1m", None, NOW) == time_range("-1m", "now", NOW)
    assert time_range("-1m", "-0s", NOW).to_ms == NOW
    with pytest.raises(ReplayError, match="in the future"):
        time_range("2999-01-01T00:00:00Z", None, NOW)
    with pytest.raises(ReplayError, match="empty time range"):
        time_range("-1m", "-2m", NOW)


@pytest.mark.parametrize("text", ["yesterday", "-10x", "10m", ""])
def test_what_is_not_a_time_says_what_is(text: str) -> None:
    with pytest.raises(ReplayError, match="is not a time: give ISO-8601"):
        parse_time(text, NOW)


def test_offsets() -> None:
    assert offset_ranges("2:5-9, 0:0-1") == [OffsetRange(0, 0, 1), OffsetRange(2, 5, 9)]
    assert len(OffsetRange(2, 5, 9)) == 4
    for bad, message in [("0:5-5", "empty range"), ("0:1-2,0:3-4", "given twice"),
                         ("a:1-2", "expected PARTITION:START-END"), (",", "no range")]:
        with pytest.raises(ReplayError, match=message):
            offset_ranges(bad)
