"""The circuit breaker's states: closed -> open after N failures -> one half-open probe."""

from __future__ import annotations

import logging

import pytest

from pipeline.core import breaker as breaker_module
from pipeline.core.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(breaker_module.time, "monotonic", lambda: now[0])
    return now


def test_opens_after_consecutive_failures_and_refuses_until_reset(clock, caplog):
    b = CircuitBreaker("kafka", failures=3, reset_s=5.0)
    with caplog.at_level(logging.WARNING, logger="inferstream"):
        b.failed()
        b.failed()
        b.succeeded()  # a success in between: the count starts again
        b.failed()
        b.failed()
        assert b.state == CLOSED and b.allow()
        b.failed()
    assert b.state == OPEN
    assert not b.allow()
    assert b.retry_after_s() == 5
    clock[0] += 2.2
    assert b.retry_after_s() == 3 and not b.allow()
    assert b.transitions["closed->open"] == 1
    assert any("closed -> open" in r.getMessage() for r in caplog.records)


def test_half_open_lets_one_probe_through_and_its_result_decides(clock):
    b = CircuitBreaker("kafka", failures=1, reset_s=1.0)
    b.failed()
    clock[0] += 1.0
    assert b.state == HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # nobody else while it runs
    b.failed()  # the probe failed: open again, for a full reset period
    assert b.state == OPEN and not b.allow()
    clock[0] += 1.0
    assert b.allow()
    b.succeeded()
    assert b.state == CLOSED and b.allow() and b.allow()
    assert b.transitions == {"closed->open": 1, "open->half-open": 2, "half-open->open": 1,
                             "half-open->closed": 1}  # fmt: skip
