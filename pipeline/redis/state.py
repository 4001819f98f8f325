"""Blobs under namespaced Redis keys; an unavailable Redis degrades to "nothing saved"."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


class RedisStateStore:
    def __init__(
        self, redis_url: str, prefix: str, retry_after_s: float = 5.0, timeout_s: float = 0.5
    ) -> None:
        import redis

        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _call(self, operation: str, *args: Any) -> Any:
        if not self.available:
            return None
        try:
            return getattr(self._client, operation)(*args)
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ...
            if self.available:
                log.warning(
                    "redis unavailable, state not %s: %s",
                    "saved" if operation == "set" else "read",
                    exc,
                )
            self._down_until = time.monotonic() + self.retry_after_s
            return None

    def put(self, key: str, blob: bytes) -> bool:
        return bool(self._call("set", self.prefix + key, blob))

    def get(self, key: str) -> bytes | None:
        return self._call("get", self.prefix + key)

    def keys(self, pattern: str = "*") -> list[str]:
        found = self._call("keys", self.prefix + pattern) or []
        return sorted(k.decode()[len(self.prefix) :] for k in found)

    def delete_matching(self, pattern: str) -> int:
        keys = self._call("keys", self.prefix + pattern) or []
        return int(self._call("delete", *keys) or 0) if keys else 0
