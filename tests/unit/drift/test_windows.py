"""The windows' building blocks: the in-place running sum and the time-major ring."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.drift.windows import TimeRing, running_sum


@pytest.mark.parametrize("shape", [(1,), (2, 1, 3), (26, 48, 20), (5, 7, 33), (17, 3)])
def test_running_sum_is_cumsum_on_every_axis(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    values = rng.integers(-(2**31), 2**31 - 1, shape, dtype=np.int64).astype(np.int32)
    for axis in range(len(shape)):
        summed = values.copy()
        with np.errstate(over="ignore"):
            running_sum(summed, axis)
            expected = np.cumsum(values, axis=axis, dtype=np.int32)  # int32 wraps alike
        np.testing.assert_array_equal(summed, expected)


def test_time_ring_keeps_the_newest_entries_in_order() -> None:
    rng = np.random.default_rng(3)
    ring = TimeRing((4, 2), capacity=9)
    pushed = np.zeros((0, 4, 2), dtype=np.int32)
    for count in (1, 3, 8, 2, 9, 14, 5, 0, 7):
        entries = rng.integers(0, 1000, (count, 4, 2)).astype(np.int32)
        ring.push(entries)
        pushed = np.concatenate([pushed, entries])
        assert ring.written == pushed.shape[0]
        for width in range(1, min(ring.written, 9) + 1):
            np.testing.assert_array_equal(ring.last(width), pushed[-width:])
