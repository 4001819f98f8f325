"""Redis result cache keyed by model version + data hash; Redis down degrades, never fails.

Calls are synchronous: the scorer runs them on the engine's prepare and encode stage threads.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.redis.client import DegradingRedis


class ResultCache:
    """MGET / pipelined SETEX of scores through a DegradingRedis."""

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        ttl_s: int = 3600,
        retry_after_s: float = 2.0,
        timeout_s: float = 0.25,
        redis: DegradingRedis | None = None,
    ) -> None:
        self.redis = redis or DegradingRedis(redis_url, retry_after_s, timeout_s)
        self._prefix = f"inferstream:score:{namespace}:"
        self.ttl_s = ttl_s

    @property
    def degraded(self) -> bool:
        return self.redis.degraded

    @property
    def degraded_periods(self) -> int:
        return self.redis.degraded_periods

    def get_many(self, hashes: Sequence[str]) -> list[float | None] | None:
        """Cached scores in order (None where missing); None when Redis is unavailable."""
        keys = [self._prefix + h for h in hashes]
        found = self.redis.call(lambda client: client.mget(keys))
        if found is None:
            return None
        return [None if value is None else float(value) for value in found]

    def put_many(self, hashes: Sequence[str], scores: Sequence[float]) -> bool:
        if not hashes:
            return False

        def put(client: object) -> bool:
            pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
            for data_hash, score in zip(hashes, scores, strict=True):
                pipe.set(self._prefix + data_hash, repr(float(score)), ex=self.ttl_s)
            pipe.execute()
            return True

        return bool(self.redis.call(put))
