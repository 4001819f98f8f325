"""One Redis connection that degrades instead of failing: what the cache and id registry share.

A failed or slow call (over `timeout_s`) marks Redis down for `retry_after_s`; callers then
skip Redis and flag their results degraded. Each stretch of "down" is counted and logged when
it starts and, with its length, when it ends, so degraded results can be traced to a period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("inferstream.redis")

T = TypeVar("T")


class DegradingRedis:
    def __init__(self, redis_url: str, retry_after_s: float = 2.0, timeout_s: float = 0.25) -> None:
        import redis

        self.client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._down_since: float | None = None
        self.degraded_periods = 0

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def call(self, operation: Callable[[Any], T]) -> T | None:
        """`operation(client)`, or None when Redis is down or the call fails."""
        if self.degraded:
            return None
        try:
            result = operation(self.client)
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ...
            self._failed(exc)
            return None
        if self._down_since is not None:
            log.warning(
                "redis back, in use again",
                extra={"degraded_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None
        return result

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self.degraded_periods += 1
            log.warning(
                "redis unavailable, scoring without it (results flagged degraded): %s",
                exc,
                extra={"degraded_periods": self.degraded_periods},
            )
        self._down_until = now + self.retry_after_s
