"""The baselines' batching window: a bench-local knob, since the worker no longer has one.

The floor (`take_events(batch_max, within=window)`) and the ceiling (`consume(batch_max,
window)`) wait up to this long for a batch to fill; the engine instead cuts batches by its
latency objective. `BENCH_WINDOW_MS` sets it (10 ms, the old worker default, if unset).
"""

from __future__ import annotations

import os

ENV = "BENCH_WINDOW_MS"
DEFAULT_MS = 10.0


def window_ms() -> float:
    raw = os.environ.get(ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_MS
    except ValueError:
        raise ValueError(f"{ENV}={raw!r} is not a number of milliseconds") from None
    if value <= 0:
        raise ValueError(f"{ENV} must be positive, got {value}")
    return value
