"""Rolling statistics of what comes out of the pipeline, for the live view and its summary."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


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
class DemoStats:
    produced: RateMeter = field(default_factory=RateMeter)
    results: RateMeter = field(default_factory=RateMeter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    all_latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=2_000))
    flagged: int = 0  # decisions other than approve
    dead_letters: int = 0
    alerts: list[str] = field(default_factory=list)  # every transition, as a line
    open_alerts: dict[str, str] = field(default_factory=dict)  # feature -> latest line

    def add_result(self, latency_ms: float, decision: str) -> None:
        self.results.add(1)
        self.latencies_ms.append(latency_ms)
        self.all_latencies_ms.append(latency_ms)
        if decision != "approve":
            self.flagged += 1

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
    def fraud_rate(self) -> float:
        return self.flagged / self.results.total if self.results.total else 0.0
