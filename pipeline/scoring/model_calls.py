"""One model call with a timeout and bounded retries: the serving path's, used by every tier.

Calls run on a small pool of their own: a hung call is abandoned after its timeout and the retry
takes the other thread. A call that fails every attempt raises `ModelFailed`, which the scoring
handler turns into dead letters for the batch (reason model-timeout or model-error).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

log = logging.getLogger("inferstream.scoring")


class ModelFailed(Exception):
    """Every attempt of a model call failed; `reason` is model-timeout or model-error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class ModelCaller:
    def __init__(
        self, timeout_s: float, retries: int, backoff_s: float = 0.05, name: str = "model"
    ) -> None:
        if timeout_s <= 0 or retries < 0:
            raise ValueError("model timeout must be positive and retries at least 0")
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self._pool = ThreadPoolExecutor(2, thread_name_prefix=f"{name}-model")

    def __call__(self, model: Any, matrix: np.ndarray) -> np.ndarray:
        last: BaseException | None = None
        for attempt in range(1 + self.retries):
            future = self._pool.submit(model.predict, matrix)
            try:
                return future.result(self.timeout_s)
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
                last = (
                    TimeoutError(f"model call over {self.timeout_s}s")
                    if isinstance(exc, FutureTimeout)
                    else exc
                )
                log.warning(
                    "model %s call failed (attempt %d of %d): %r",
                    model.manifest.version, attempt + 1, 1 + self.retries, last,
                )  # fmt: skip
                time.sleep(self.backoff_s * (2**attempt))
        reason = "model-timeout" if isinstance(last, TimeoutError) else "model-error"
        raise ModelFailed(reason, f"model {model.manifest.version}: {last!r}")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
