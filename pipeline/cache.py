"""Redis result cache keyed by model version + data hash; Redis down degrades, never fails.

Calls are synchronous: the scorer runs them on the engine's prepare and encode stage threads.
Each stretch of "Redis down" is counted and logged twice, when it starts and when it ends with
its length, so degraded results can be traced to a period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)


class ResultCache:
    """MGET / pipelined SETEX of scores; a failure marks the cache degraded for `retry_after_s`."""

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        ttl_s: int = 3600,
        retry_after_s: float = 2.0,
        timeout_s: float = 0.25,
    ) -> None:
        import redis

        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._prefix = f"inferstream:score:{namespace}:"
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._down_since: float | None = None
        self.degraded_periods = 0

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self.degraded_periods += 1
            log.warning(
                "redis unavailable, scoring without cache (results flagged degraded): %s",
                exc,
                extra={"degraded_periods": self.degraded_periods},
            )
        self._down_until = now + self.retry_after_s

    def _succeeded(self) -> None:
        if self._down_since is not None:
            log.warning(
                "redis back, cache in use again",
                extra={"degraded_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None

    def get_many(self, hashes: Sequence[str]) -> list[float | None] | None:
        """Cached scores in order (None where missing); None when Redis is unavailable."""
        if self.degraded:
            return None
        try:
            found = self._client.mget([self._prefix + h for h in hashes])
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ...
            self._failed(exc)
            return None
        self._succeeded()
        return [None if value is None else float(value) for value in found]

    def put_many(self, hashes: Sequence[str], scores: Sequence[float]) -> bool:
        if self.degraded or not hashes:
            return False
        try:
            pipe = self._client.pipeline(transaction=False)
            for data_hash, score in zip(hashes, scores, strict=True):
                pipe.set(self._prefix + data_hash, repr(float(score)), ex=self.ttl_s)
            pipe.execute()
        except Exception as exc:
            self._failed(exc)
            return False
        return True
