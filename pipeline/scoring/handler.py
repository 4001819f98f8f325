"""The scoring handler: a BatchScorer as the engine's four stages.

    prepare (decode, validate, features, cache lookup) -> infer (one model call, timeout and
    bounded retries) -> encode (results, provenance, dead letters) -> deliver (returns once
    every output is acknowledged)

Each stage runs on its own engine thread, so while batch n is in the model, batch n+1 is
decoded and batch n-1 delivered. `handle` runs the same stages one after the other, for
callers that score a batch on their own thread (replay, tests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Any

import numpy as np

from pipeline.core.batch import Batch
from pipeline.core.handler import Stage
from pipeline.core.messages import OutboundMessage
from pipeline.scoring.model_calls import CircuitOpen, ModelBreakers, ModelCaller, ModelFailed
from pipeline.scoring.scorer import BatchScorer, PreparedBatch, ScoredBatch, now_ms

log = logging.getLogger("inferstream.scoring")

Deliver = Callable[[Sequence[OutboundMessage]], None]


@dataclass
class _InFlight:
    batch: Batch
    prepared: PreparedBatch
    outputs: np.ndarray | None = None
    inference_started_ms: int = 0
    inference_ms: float = 0.0
    failure: tuple[str, str] | None = None  # (reason, detail) when the model failed for good


@dataclass
class ScoringStats:
    """Counters the worker's periodic stats line reads."""

    batches: int = 0
    received: int = 0
    scored: int = 0
    dead_lettered: int = 0
    cache_hits: int = 0


class ScoringHandler:
    def __init__(
        self,
        scorer: BatchScorer,
        deliver: Deliver,
        model_timeout_s: float,
        model_retries: int,
        retry_backoff_s: float = 0.05,
        breakers: ModelBreakers | None = None,
    ) -> None:
        if model_timeout_s <= 0 or model_retries < 0:
            raise ValueError("model timeout must be positive and retries at least 0")
        self.name = f"score-{scorer.plugin.name}"
        self.scorer = scorer
        self.deliver = deliver
        self.model_timeout_s = model_timeout_s
        self.model_retries = model_retries
        self.retry_backoff_s = retry_backoff_s
        self.stats = ScoringStats()
        self._stats_lock = Lock()
        self.breakers = breakers  # per model version; the metrics read their states
        self._model = ModelCaller(
            model_timeout_s, model_retries, retry_backoff_s, self.name, breakers
        )
        # metrics hook (pipeline/metrics/observer.py ScoringObserver), once per batch on the
        # encode stage: batch_scored(prepared, scored, inference_ms, model)
        self.observer: Any = None

    def stages(self) -> list[Stage]:
        return [
            Stage("prepare", self.prepare),
            Stage("infer", self.infer),
            Stage("encode", self.encode),
            Stage("deliver", self.publish),
        ]

    def handle(self, batch: Batch) -> ScoredBatch:
        """All four stages on the calling thread; returns once the outputs are delivered."""
        return self.publish(self.encode(self.infer(self.prepare(batch))))

    # -- stages ----------------------------------------------------------------------------
    def prepare(self, batch: Batch) -> _InFlight:
        return _InFlight(batch, self.scorer.prepare(batch.messages))

    def infer(self, work: _InFlight) -> _InFlight:
        if not work.prepared.messages:  # nothing valid to score: only dead letters to publish
            work.outputs, work.inference_started_ms = np.empty((0, 0)), now_ms()
            return work
        work.inference_started_ms, started = now_ms(), time.perf_counter()
        try:
            work.outputs = self.scorer.infer(work.prepared, self._call_model)
        except ModelFailed as failed:
            if isinstance(failed, CircuitOpen):  # the breaker logged its opening, once
                log.debug("dead-lettering a batch of %d: %s", len(work.prepared.messages),
                          failed.detail)  # fmt: skip
            else:
                log.error(
                    "dead-lettering a batch of %d after %d model attempts: %s",
                    len(work.prepared.messages),
                    1 + self.model_retries,
                    failed.detail,
                )
            work.failure = (failed.reason, failed.detail)
            return work
        work.inference_ms = (time.perf_counter() - started) * 1000
        return work

    def _call_model(self, matrix: np.ndarray) -> np.ndarray:
        """One model call, with the timeout and bounded retries (a token-budget batch of a
        document window makes several)."""
        return self._model(self.scorer.model, matrix)

    def encode(self, work: _InFlight) -> ScoredBatch:
        scored = self._encode(work)
        if self.observer is not None:  # metrics hook
            self.observer.batch_scored(work.prepared, scored, work.inference_ms, self.scorer.model)
        return scored

    def _encode(self, work: _InFlight) -> ScoredBatch:
        if work.failure is not None:
            return self.scorer.dead_letter_batch(work.prepared, *work.failure)
        assert work.outputs is not None
        return self.scorer.publishable(
            work.prepared,
            work.outputs,
            work.inference_started_ms,
            work.inference_ms,
            cut=work.batch.cut,
            wait_ms=work.batch.wait_ms,
        )

    def publish(self, scored: ScoredBatch) -> ScoredBatch:
        self.deliver(scored.outbound)
        with self._stats_lock:
            s = self.stats
            s.batches += 1
            s.received += scored.scored + scored.dead_lettered
            s.scored += scored.scored
            s.dead_lettered += scored.dead_lettered
            s.cache_hits += scored.cache_hits
        return scored

    def close(self) -> None:
        self._model.close()
