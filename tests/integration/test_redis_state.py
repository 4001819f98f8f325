"""Saved state (drift status, checkpoints) on the real Redis server, among other keys."""

from __future__ import annotations

import pytest

from pipeline.redis.state import SCAN_COUNT, RedisStateStore

pytestmark = pytest.mark.integration


def test_keys_are_found_by_scan_among_many_others_and_deleted(stack, namespace):
    store = RedisStateStore(stack.redis_url, prefix=f"inferstream:test:{namespace}:")
    noise = RedisStateStore(stack.redis_url, prefix=f"inferstream:noise:{namespace}:")
    # more unrelated keys than one SCAN step looks at, so the scan must take several steps
    noise.redis.call(
        lambda client: client.mset({f"{noise.prefix}{i}": b"x" for i in range(SCAN_COUNT + 500)})
    )
    try:
        for name in ("status:a", "status:b", "checkpoint:a"):
            assert store.put(name, name.encode())
        assert store.keys("status:*") == ["status:a", "status:b"]
        assert store.get("status:b") == b"status:b"
        assert store.delete_matching("status:*") == 2
        assert store.keys() == ["checkpoint:a"]
    finally:
        store.delete_matching("*")
        noise.delete_matching("*")
    assert noise.keys() == []
