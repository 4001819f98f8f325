"""Load shedding's rule: expected wait from lag and throughput, doubled per priority step."""

from __future__ import annotations

from math import inf

from pipeline.gateway.shedding import Backlog, refusal


def test_shedding_starts_with_the_lowest_priority_and_says_when_to_come_back():
    moving = Backlog(lag=1000, rate=100.0)  # a new request waits 10 s
    assert moving.wait_s == 10.0
    assert refusal(moving, 4.0, priority=0) == 6.0  # accepts 4 s: back when 6 s drained
    assert refusal(moving, 4.0, priority=1) == 2.0  # accepts 8 s
    assert refusal(moving, 4.0, priority=2) is None  # accepts 16 s
    assert refusal(moving, 0.0, priority=0) is None  # shedding off
    stuck = Backlog(lag=5, rate=0.0)
    assert stuck.wait_s == inf and refusal(stuck, 3.0, priority=1) == 6.0
    assert refusal(Backlog(lag=0, rate=0.0), 3.0, priority=0) is None  # idle, not stuck
