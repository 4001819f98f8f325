"""A real Redis (the suite's stack) and a fresh key namespace per test, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pipeline.gateway.keys import redis_prefix
from pipeline.redis.client import DegradingRedis
from pipeline.redis.state import scan_keys


@pytest.fixture
def redis(stack) -> DegradingRedis:
    return DegradingRedis(stack.redis_url, retry_after_s=0.1, timeout_s=2.0)


@pytest.fixture
def namespace(redis: DegradingRedis) -> Iterator[str]:
    ns = f"u{uuid.uuid4().hex[:8]}."
    yield ns
    # the gateway's keys, and whatever a test wrote under the namespace itself (cached rows)
    keys = scan_keys(redis.client, redis_prefix(ns) + "*") + scan_keys(redis.client, ns + "*")
    if keys:
        redis.client.delete(*keys)
