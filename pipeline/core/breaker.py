"""A circuit breaker: closed -> open after N consecutive failures -> half-open probe -> closed.

While open, calls are refused at once (the gateway answers 503 with `retry_after_s()`, the
worker serves its fallback tier), so a dead dependency costs no waiting. After `reset_s` one
probe is let through (half-open); its success closes the breaker, its failure opens it again.
Every state change is logged on `logger` and counted. One breaker per process and dependency
(the gateway's Kafka producer, a worker's model version): it is the process's own producer or
model session that fails, so the state is not shared through Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    def __init__(
        self, name: str, failures: int = 5, reset_s: float = 5.0, logger: str = "inferstream"
    ) -> None:
        self.name = name
        self.log = logging.getLogger(logger)
        self.failures = failures
        self.reset_s = reset_s
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False
        self._lock = threading.Lock()
        self.transitions: Counter[str] = Counter()

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and time.monotonic() - self._opened_at >= self.reset_s:
                return HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a call go through now? Half-open lets exactly one probe through at a time."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and time.monotonic() - self._opened_at < self.reset_s:
                return False
            if self._probing:
                return False
            self._move(HALF_OPEN)
            self._probing = True
            return True

    def retry_after_s(self) -> int:
        with self._lock:
            left = self.reset_s - (time.monotonic() - self._opened_at)
        return max(1, int(-(-left // 1)))

    def succeeded(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._probing = False
            if self._state != CLOSED:
                self._move(CLOSED)

    def failed(self, reason: str = "") -> None:
        with self._lock:
            self._consecutive += 1
            self._probing = False
            if self._state == HALF_OPEN or (
                self._state == CLOSED and self._consecutive >= self.failures
            ):
                self._opened_at = time.monotonic()
                self._move(OPEN, reason)
            elif self._state == OPEN:
                self._opened_at = time.monotonic()

    def _move(self, state: str, reason: str = "") -> None:
        if state == self._state:
            return
        self.transitions[f"{self._state}->{state}"] += 1
        self.log.warning(
            "circuit breaker %s: %s -> %s%s",
            self.name,
            self._state,
            state,
            f" ({reason})" if reason else "",
            extra={"breaker": self.name, "from": self._state, "to": state},
        )
        self._state = state
