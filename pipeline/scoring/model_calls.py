"""One model call with a timeout and bounded retries: the serving path's, used by every tier.

Each attempt runs on a small pool of the caller's own, and the caller waits for it at most
`timeout_s`. An attempt over its timeout is ended, not only abandoned: an ONNX Runtime call
(`LoadedModel`) gets its `RunOptions.terminate` set, which stops the run at its next node, so
a slow or hung model does not keep the pool's threads (and a core) from the next batch; an
attempt still queued is cancelled. Failed attempts are retried after a short doubling backoff
(`backoff_s`, 2x, ...). When every attempt failed, `ModelFailed` says why in one line, and the
scoring handler turns it into dead letters for the batch: reason `model-timeout` or
`model-error` (a bounded set: it is a metric label), the one line in the `dlq.detail` header.

A circuit breaker per model version (`ModelBreakers`, pipeline/core/breaker.py) stands in
front: after `failures` batches in a row failed for good, calls to that version are refused at
once with `CircuitOpen` (reason `circuit-open`) for `reset_s`, instead of each batch waiting
through its timeouts and retries; then one batch probes it (half-open) and its success closes
the breaker. The tier router serves a refused or failed batch from the policy's fallback
version when there is one (pipeline/tiers/cascade.py); without one the batch is dead-lettered
with the reason.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from pipeline.core.breaker import CircuitBreaker
from pipeline.models.exceptions import CIRCUIT_REASON, CircuitOpen, ModelFailed
from pipeline.models.runtime import LoadedModel, import_onnxruntime

log = logging.getLogger("inferstream.scoring")

__all__ = ["CIRCUIT_REASON", "CircuitOpen", "ModelBreakers", "ModelCaller", "ModelFailed"]

TIMEOUT_REASON = "model-timeout"
ERROR_REASON = "model-error"
_DETAIL_CHARS = 400  # a dead letter's detail, a log line: one short line


class ModelBreakers:
    """One breaker per model version of this process (the handler's and the router's callers
    share it): a model session fails in its own process, so nothing is shared through Redis."""

    def __init__(self, failures: int = 3, reset_s: float = 10.0) -> None:
        if failures < 1 or not reset_s > 0:
            raise ValueError("breaker failures must be at least 1 and its reset positive")
        self.failures, self.reset_s = failures, reset_s
        self._breakers: dict[str, CircuitBreaker] = {}

    def of(self, version: str) -> CircuitBreaker:
        breaker = self._breakers.get(version)
        if breaker is None:
            breaker = self._breakers.setdefault(
                version,
                CircuitBreaker(
                    f"model {version}", self.failures, self.reset_s, "inferstream.scoring"
                ),
            )
        return breaker

    def by_version(self) -> dict[str, CircuitBreaker]:
        return dict(self._breakers)


class ModelCaller:
    def __init__(
        self,
        timeout_s: float,
        retries: int,
        backoff_s: float = 0.05,
        name: str = "model",
        breakers: ModelBreakers | None = None,
    ) -> None:
        if not timeout_s > 0 or retries < 0 or backoff_s < 0:
            raise ValueError(
                "model timeout must be positive, retries at least 0 and backoff not negative"
            )
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.breakers = breakers
        # two threads: a retry can start while an ended attempt is still leaving its node
        self._pool = ThreadPoolExecutor(2, thread_name_prefix=f"{name}-model")

    @property
    def attempts(self) -> int:
        return 1 + self.retries

    def __call__(self, model: Any, matrix: np.ndarray) -> np.ndarray:
        if self.breakers is None:
            return self._attempts(model, matrix)
        version = _version(model)
        breaker = self.breakers.of(version)
        if not breaker.allow():
            raise CircuitOpen(
                f"model {version}: circuit open after {breaker.failures} failed batches in a "
                f"row; next probe in {breaker.retry_after_s()} s",
                version,
            )
        try:
            outputs = self._attempts(model, matrix)
        except ModelFailed as failed:
            breaker.failed(failed.reason)
            raise
        breaker.succeeded()
        return outputs

    def _attempts(self, model: Any, matrix: np.ndarray) -> np.ndarray:
        reason, problem = ERROR_REASON, ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            run_options = _run_options(model)
            future = self._pool.submit(_predict, model, matrix, run_options)
            try:
                return future.result(self.timeout_s)
            except FutureTimeout:
                _end(future, run_options)
                reason, problem = TIMEOUT_REASON, f"no answer within {self.timeout_s:g} s"
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
                reason, problem = ERROR_REASON, one_line(exc)
            log.warning(
                "model %s call failed (attempt %d of %d): %s",
                _version(model), attempt + 1, self.attempts, problem,
            )  # fmt: skip
        raise ModelFailed(reason, f"model {_version(model)}: {problem}", _version(model))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def one_line(exc: BaseException) -> str:
    """`exc` as one short line: its type and message, whitespace collapsed, cut to length."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 3] + "..."


def _run_options(model: Any) -> Any:
    """A fresh onnxruntime.RunOptions for an ONNX Runtime model (None for other models): its
    `terminate` ends the call; ONNX Runtime's own log line of a failed run is silenced (the
    caller logs one structured line per attempt)."""
    if not isinstance(model, LoadedModel):
        return None
    options = import_onnxruntime().RunOptions()
    options.log_severity_level = 4  # fatal only
    return options


def _predict(model: Any, matrix: np.ndarray, run_options: Any) -> np.ndarray:
    if run_options is None:
        return model.predict(matrix)  # type: ignore[no-any-return]
    return model.predict(matrix, run_options=run_options)  # type: ignore[no-any-return]


def _end(future: Future[np.ndarray], run_options: Any) -> None:
    """Stop an attempt that is over its timeout: cancelled if still queued, else terminated."""
    if not future.cancel() and run_options is not None:
        run_options.terminate = True


def _version(model: Any) -> str:
    manifest = getattr(model, "manifest", None)
    return str(getattr(manifest, "version", "?"))
