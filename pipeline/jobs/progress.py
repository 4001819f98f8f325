"""A job's counts and the arithmetic on them: what is left, cost, throughput, time to go."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class JobCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0  # bad input and documents the stream dead-lettered
    deferred: int = 0  # refused for the budget: sent again by `jobs resume`
    cancelled: int = 0  # refused because the job was cancelled
    cached: int = 0  # completed from the result cache (an identical document scored before)
    tokens: int = 0  # tokens the model ran on, over the completed documents

    @property
    def processed(self) -> int:
        return self.completed + self.failed

    @property
    def accounted(self) -> int:
        return self.completed + self.failed + self.deferred + self.cancelled

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.accounted)

    def cost(self, seconds_per_token: float) -> float:
        """Model-seconds spent: tokens x the model's measured seconds per token."""
        return self.tokens * seconds_per_token


def throughput(processed: int, started_ms: int | None, last_ms: int | None) -> float | None:
    """Documents per second between the first and the last counted output; None: too early."""
    if not processed or started_ms is None or last_ms is None or last_ms <= started_ms:
        return None
    return processed / ((last_ms - started_ms) / 1000)


def eta_seconds(remaining: int, rate: float | None) -> float | None:
    """Seconds until `remaining` documents are done at `rate` per second; None: unknown."""
    if remaining <= 0:
        return 0.0
    if not rate or rate <= 0:
        return None
    return remaining / rate


def estimated_total_cost(counts: JobCounts, seconds_per_token: float, estimated: float) -> float:
    """Spent so far plus the submit-time estimate scaled to the documents still to come."""
    spent = counts.cost(seconds_per_token)
    if not counts.total:
        return spent
    left = counts.remaining + counts.deferred
    return spent + estimated * left / counts.total


class RateMeter:
    """Documents per second over a sliding window of (time, processed) samples."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] | None = None) -> None:
        self.window_s = window_s
        self._clock = clock or time.monotonic
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, processed: int, at: float | None = None) -> None:
        now = self._clock() if at is None else at
        self._samples.append((now, processed))
        while len(self._samples) > 2 and now - self._samples[1][0] > self.window_s:
            self._samples.popleft()

    @property
    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return max(0.0, (n1 - n0) / (t1 - t0))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True)
class JobSnapshot:
    """A job as the store holds it now: its spec, state, counts and when outputs came."""

    spec: object  # a pipeline.jobs.spec.JobSpec (not imported: this module is arithmetic only)
    state: str
    counts: JobCounts
    started_ms: int | None = None  # when its documents were first sent
    first_output_ms: int | None = None
    last_output_ms: int | None = None

    @property
    def rate(self) -> float | None:
        return throughput(
            self.counts.processed, self.first_output_ms or self.started_ms, self.last_output_ms
        )
