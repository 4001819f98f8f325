"""Blobs under namespaced Redis keys (detector checkpoints, status snapshots).

Through the one DegradingRedis client: Redis down degrades to "nothing saved / nothing read",
counted and logged like the cache's degraded periods.
"""

from __future__ import annotations

from pipeline.redis.client import DegradingRedis


class RedisStateStore:
    def __init__(
        self,
        redis_url: str,
        prefix: str,
        retry_after_s: float = 5.0,
        timeout_s: float = 0.5,
        redis: DegradingRedis | None = None,
    ) -> None:
        self.redis = redis or DegradingRedis(redis_url, retry_after_s, timeout_s)
        self.prefix = prefix

    @property
    def available(self) -> bool:
        return not self.redis.degraded

    def put(self, key: str, blob: bytes) -> bool:
        return bool(self.redis.call(lambda client: client.set(self.prefix + key, blob)))

    def get(self, key: str) -> bytes | None:
        return self.redis.call(lambda client: client.get(self.prefix + key))

    def keys(self, pattern: str = "*") -> list[str]:
        found = self.redis.call(lambda client: client.keys(self.prefix + pattern)) or []
        return sorted(k.decode()[len(self.prefix) :] for k in found)

    def delete_matching(self, pattern: str) -> int:
        keys = self.redis.call(lambda client: client.keys(self.prefix + pattern)) or []
        if not keys:
            return 0
        return int(self.redis.call(lambda client: client.delete(*keys)) or 0)
