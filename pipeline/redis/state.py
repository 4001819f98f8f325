"""Blobs under namespaced Redis keys (detector checkpoints, status snapshots).

Through the one DegradingRedis client: Redis down degrades to "nothing saved / nothing read",
counted and logged like the cache's degraded periods.
"""

from __future__ import annotations

from typing import Any

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
        found = self.redis.call(lambda client: scan_keys(client, self.prefix + pattern)) or []
        return sorted(k.decode()[len(self.prefix) :] for k in found)

    def delete_matching(self, pattern: str) -> int:
        keys = self.redis.call(lambda client: scan_keys(client, self.prefix + pattern)) or []
        if not keys:
            return 0
        return int(self.redis.call(lambda client: client.delete(*keys)) or 0)


SCAN_COUNT = 10_000  # keys a SCAN step looks at: ~100 round trips for a million-key database


def scan_keys(client: Any, pattern: str) -> list[bytes]:
    """Keys matching `pattern` by SCAN, not KEYS: KEYS blocks the Redis server for every
    client while it walks the whole keyspace (seconds on a shared production database)."""
    return list(client.scan_iter(match=pattern, count=SCAN_COUNT))
