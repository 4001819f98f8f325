"""ResultCache when Redis does not answer: degraded, one period counted, never an error."""

from __future__ import annotations

import logging
import time

import numpy as np

from pipeline.redis.cache import ResultCache


def test_an_unreachable_redis_is_one_degraded_period_however_many_calls(caplog):
    cache = ResultCache("redis://127.0.0.1:1/0", namespace="t", retry_after_s=0.05, timeout_s=0.05)
    with caplog.at_level(logging.WARNING, logger="inferstream.redis"):
        assert cache.get_many(["a"]) is None
        assert cache.degraded
        assert cache.put_many(["a"], np.array([[0.5, 0.5]])) is False  # skipped while degraded
        time.sleep(0.06)  # past retry_after: the next call tries Redis again, and fails again
        assert not cache.degraded
        assert cache.get_many(["a"]) is None
    assert cache.degraded_periods == 1
    starts = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert len(starts) == 1
