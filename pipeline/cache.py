"""Redis result cache keyed by model version + data hash; Redis down degrades, never fails.

Calls are synchronous: the scorer runs a whole batch in a worker thread, off the event loop.
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
        retry_after_s: float = 5.0,
        timeout_s: float = 0.05,
    ) -> None:
        import redis

        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._prefix = f"inferstream:score:{namespace}:"
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self._down_until = 0.0

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, exc: Exception) -> None:
        if not self.degraded:
            log.warning("redis unavailable, scoring without cache: %s", exc)
        self._down_until = time.monotonic() + self.retry_after_s

    def get_many(self, hashes: Sequence[str]) -> list[float | None] | None:
        """Cached scores in order (None where missing); None when Redis is unavailable."""
        if self.degraded:
            return None
        try:
            found = self._client.mget([self._prefix + h for h in hashes])
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ...
            self._failed(exc)
            return None
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
