"""Async driver of a BatchScorer: thread hops, model timeout and bounded retries.

Decoding and encoding run on one "codec" thread (keeps batches in order); the model runs on
its own pool so a hung call can be abandoned after its timeout without blocking the next batch.
With `deliver` (e.g. `Publisher.publish`), the codec thread also delivers the batch's outputs,
and `score` returns only once all of them are delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.scoring.messages import InboundMessage, OutboundMessage
from pipeline.scoring.scorer import BatchScorer, ScoredBatch, now_ms

log = logging.getLogger("inferstream.scoring")

Deliver = Callable[[Sequence[OutboundMessage]], None]


class ScoringRunner:
    def __init__(
        self,
        scorer: BatchScorer,
        model_timeout_s: float,
        model_retries: int,
        retry_backoff_s: float = 0.05,
        deliver: Deliver | None = None,
    ) -> None:
        self.scorer = scorer
        self.deliver = deliver
        self.model_timeout_s = model_timeout_s
        self.model_retries = model_retries
        self.retry_backoff_s = retry_backoff_s
        self._codec = ThreadPoolExecutor(1, thread_name_prefix="inferstream-codec")
        self._model = ThreadPoolExecutor(2, thread_name_prefix="inferstream-model")

    async def score(self, messages: Sequence[InboundMessage]) -> ScoredBatch:
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(self._codec, self.scorer.prepare, messages)
        if not prepared.messages:  # nothing valid to score: only dead letters to publish
            return await loop.run_in_executor(
                self._codec,
                self._finish,
                self.scorer.publishable,
                prepared,
                np.empty(0),
                now_ms(),
                0.0,
            )
        last_error: BaseException | None = None
        for attempt in range(1 + self.model_retries):
            started_ms, started = now_ms(), time.perf_counter()
            try:
                scores = await asyncio.wait_for(
                    loop.run_in_executor(self._model, self.scorer.infer, prepared),
                    self.model_timeout_s,
                )
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
                last_error = exc
                log.warning(
                    "model call failed (attempt %d of %d): %r",
                    attempt + 1,
                    1 + self.model_retries,
                    exc,
                )
                await asyncio.sleep(self.retry_backoff_s * (2**attempt))
                continue
            inference_ms = (time.perf_counter() - started) * 1000
            return await loop.run_in_executor(
                self._codec,
                self._finish,
                self.scorer.publishable,
                prepared,
                scores,
                started_ms,
                inference_ms,
            )
        reason = "model-timeout" if isinstance(last_error, TimeoutError) else "model-error"
        log.error(
            "dead-lettering a batch of %d after %d model attempts: %r",
            len(prepared.messages),
            1 + self.model_retries,
            last_error,
        )
        return await loop.run_in_executor(
            self._codec,
            self._finish,
            self.scorer.dead_letter_batch,
            prepared,
            reason,
            repr(last_error),
        )

    def _finish(self, build: Callable[..., ScoredBatch], *args: object) -> ScoredBatch:
        """On the codec thread: build the outputs and, with `deliver`, deliver them."""
        scored = build(*args)
        if self.deliver is not None:
            self.deliver(scored.outbound)
        return scored

    def close(self) -> None:
        self._codec.shutdown(wait=False)
        self._model.shutdown(wait=False, cancel_futures=True)
