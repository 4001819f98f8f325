"""One Redis connection that degrades instead of failing: what the cache and id registry share.

A failed or slow call (over `timeout_s`) marks Redis down for `retry_after_s`; callers then
skip Redis and flag their results degraded. Each stretch of "down" is counted and logged when
it starts and, with its length, when it ends, so degraded results can be traced to a period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pipeline.config import Settings, read_secret, redact_url

log = logging.getLogger("inferstream.redis")

T = TypeVar("T")


def connection_options(settings: Settings) -> dict[str, Any]:
    """redis-py options for the security settings: the password (from its file or the
    environment) and, for rediss:// URLs, certificate checks against INFERSTREAM_REDIS_TLS_CA.

    A password in the URL itself (redis://:pw@host) wins over these, as redis-py does it."""
    options: dict[str, Any] = {}
    if settings.redis_password_file:
        options["password"] = read_secret(
            settings.redis_password_file, "INFERSTREAM_REDIS_PASSWORD_FILE"
        )
    elif settings.redis_password:
        options["password"] = settings.redis_password
    if settings.redis_url.startswith("rediss://"):
        # verified and hostname-checked: TLS without it would accept any server
        options["ssl_cert_reqs"] = "required"
        options["ssl_check_hostname"] = True
        if settings.redis_tls_ca:
            options["ssl_ca_certs"] = str(Path(settings.redis_tls_ca).expanduser())
    return options


def _settings_for(target: str | Settings) -> Settings:
    """`target`, or the process's settings (environment) with Redis URL `target`."""
    if isinstance(target, Settings):
        return target
    current = Settings.from_env()
    return current if current.redis_url == target else replace(current, redis_url=target)


class DegradingRedis:
    def __init__(
        self, redis_url: str | Settings, retry_after_s: float = 2.0, timeout_s: float = 0.25
    ) -> None:
        """`redis_url`: a URL (the process's password and TLS settings apply) or Settings."""
        import redis

        settings = _settings_for(redis_url)
        self.url = redact_url(settings.redis_url)  # fit to show
        self.client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            **connection_options(settings),
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
