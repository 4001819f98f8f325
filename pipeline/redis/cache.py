"""Redis result cache keyed by model version + data hash; Redis down degrades, never fails.

A value is the model's output row for that input (float64 bytes), so a hit is served through
the stream's output head exactly like a fresh model output. Calls are synchronous: the scorer
runs them on the engine's prepare and encode stage threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.redis.client import DegradingRedis


class ResultCache:
    """MGET / pipelined SET EX of output rows through a DegradingRedis."""

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
        self._prefix = f"inferstream:output:{namespace}:"
        self.ttl_s = ttl_s

    def key_names(self, keys: Sequence[str]) -> list[str]:
        """The Redis key of each cache key (for a reader that fetches them in its own call,
        such as the gateway's admission script)."""
        return [self._prefix + k for k in keys]

    @property
    def degraded(self) -> bool:
        return self.redis.degraded

    @property
    def degraded_periods(self) -> int:
        return self.redis.degraded_periods

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None] | None:
        """Cached output rows in order (None where missing); None when Redis is unavailable."""
        names = self.key_names(keys)
        found = self.redis.call(lambda client: client.mget(names))
        if found is None:
            return None
        return [None if value is None else np.frombuffer(value, dtype="<f8") for value in found]

    def put_many(self, keys: Sequence[str], rows: np.ndarray) -> bool:
        if not len(keys):
            return False
        values = np.ascontiguousarray(rows, dtype="<f8")

        def put(client: object) -> bool:
            pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
            for key, row in zip(keys, values, strict=True):
                pipe.set(self._prefix + key, row.tobytes(), ex=self.ttl_s)
            pipe.execute()
            return True

        return bool(self.redis.call(put))
