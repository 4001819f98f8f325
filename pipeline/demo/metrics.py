"""Rolling statistics of what comes out of the pipeline, for the live view and its summary."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


def fmt(value: float, spec: str = ",.1f") -> str:
    """`value` formatted, or "-" when there is nothing to show yet (nan, inf)."""
    return format(value, spec) if math.isfinite(value) else "-"


@dataclass
class RateMeter:
    """Events per second over the last `span_s` seconds."""

    span_s: float = 5.0
    _marks: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def add(self, n: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.total += n
        self._marks.append((now, self.total))
        while self._marks and now - self._marks[0][0] > self.span_s:
            self._marks.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if not self._marks:
            return 0.0
        start_time, start_total = self._marks[0]
        elapsed = max(now - start_time, 1e-3)
        return (self.total - start_total) / elapsed if elapsed >= 0.5 else 0.0


@dataclass
class BehindTracker:
    """Whether the worker has fallen behind: more than `threshold_s` seconds' worth of
    produced requests (at the demo's rate) without a result or dead letter, for at least
    `for_s` seconds in a row."""

    rate: float
    threshold_s: float = 2.0
    for_s: float = 3.0
    min_events: int = 500
    _since: float | None = None
    behind: bool = False
    episodes: int = 0  # times it fell behind
    worst_lag: int = 0

    @property
    def threshold(self) -> int:
        return max(self.min_events, int(self.rate * self.threshold_s))

    def update(self, lag: int, now: float | None = None) -> bool:
        """Feed the current lag (events); True when the worker has just fallen behind."""
        now = time.monotonic() if now is None else now
        self.worst_lag = max(self.worst_lag, lag)
        if lag <= self.threshold:
            self._since = None
            self.behind = False
            return False
        if self._since is None:
            self._since = now
        if not self.behind and now - self._since >= self.for_s:
            self.behind = True
            self.episodes += 1
            return True
        return False


@dataclass
class DemoStats:
    produced: RateMeter = field(default_factory=RateMeter)
    results: RateMeter = field(default_factory=RateMeter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    all_latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=2_000))
    flagged: int = 0  # results the stream's plug-in calls flagged
    dead_letters: int = 0
    alerts: list[str] = field(default_factory=list)  # every transition, as a line
    open_alerts: dict[str, str] = field(default_factory=dict)  # feature -> latest line
    # request ids this run produced, and those answered (a result or a dead letter): only
    # these count, so results of an earlier run's backlog or duplicates never inflate "scored"
    produced_ids: set[str] = field(default_factory=set)
    answered_ids: set[str] = field(default_factory=set)
    foreign: int = 0  # results/dead letters of requests this run did not produce
    duplicates: int = 0  # second answers to a request (at-least-once redelivery)
    produce_error: str | None = None
    produce_s: float = 0.0  # how long producing took (set when it is done)
    stream: str = ""  # the stream the demo runs

    def answer(self, request_id: str | None) -> bool:
        """Record an answer to `request_id`; True when it is a first answer to this run's."""
        if request_id is None or request_id not in self.produced_ids:
            self.foreign += 1
            return False
        if request_id in self.answered_ids:
            self.duplicates += 1
            return False
        self.answered_ids.add(request_id)
        return True

    def add_result(self, latency_ms: float, flagged: bool) -> None:
        self.results.add(1)
        self.latencies_ms.append(latency_ms)
        self.all_latencies_ms.append(latency_ms)
        if flagged:
            self.flagged += 1

    @property
    def lag(self) -> int:
        """Produced requests with neither a result nor a dead letter yet."""
        return max(0, self.produced.total - self.results.total - self.dead_letters)

    @property
    def complete(self) -> bool:
        return self.produce_error is None and self.lag == 0

    def percentiles(self, recent: bool = True) -> tuple[float, float, float]:
        data = self.latencies_ms if recent else self.all_latencies_ms
        if not data:
            return (float("nan"),) * 3  # type: ignore[return-value]
        p50, p95, p99 = np.percentile(np.fromiter(data, float), [50, 95, 99])
        return float(p50), float(p95), float(p99)

    @property
    def mean_batch(self) -> float:
        return float(np.mean(self.batch_sizes)) if self.batch_sizes else float("nan")

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.results.total if self.results.total else float("nan")
