"""The handler's stages, each on its own thread, batches flowing through them in order.

Stage i hands its result to stage i+1 through a one-slot inbox, so at most one batch waits
between two stages and a slow stage holds back the ones before it (backpressure reaches the
consumer thread as "the first stage is not free"). Every stage's service time is added to the
batch (`busy_s`), which the batcher's cost model learns from.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.core.batch import Batch
from pipeline.core.handler import Stage

log = logging.getLogger("inferstream.engine")

_STOP = object()


class StagePipeline:
    def __init__(
        self,
        name: str,
        stages: Sequence[Stage],
        on_done: Callable[[Batch], None],
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        if not stages:
            raise ValueError("a handler needs at least one stage")
        self.name = name
        self.stages = list(stages)
        self.on_done = on_done
        self.on_error = on_error
        self._free = threading.Semaphore(1)  # stage 0 free to take a batch
        self._inboxes: list[queue.Queue[Any]] = [queue.Queue(maxsize=1) for _ in self.stages]
        self._in_flight = 0
        self._idle = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"{name}-{stage.name}", daemon=True)
            for i, stage in enumerate(self.stages)
        ]
        for thread in self._threads:
            thread.start()

    def acquire(self, timeout: float) -> bool:
        """Wait until the first stage can take a batch; then `submit` must follow."""
        return self._free.acquire(timeout=timeout)

    def release(self) -> None:
        """Give back an `acquire` that is not followed by a submit."""
        self._free.release()

    def submit(self, batch: Batch) -> None:
        with self._idle:
            self._in_flight += 1
        self._inboxes[0].put((batch, batch))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted batch went through all stages; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self) -> None:
        self._inboxes[0].put(_STOP)
        for thread in self._threads:
            thread.join(5)

    def _run(self, index: int) -> None:
        stage, inbox = self.stages[index], self._inboxes[index]
        outbox = self._inboxes[index + 1] if index + 1 < len(self.stages) else None
        clock = time.perf_counter
        while True:
            item = inbox.get()
            if item is _STOP:
                if outbox is not None:
                    outbox.put(_STOP)
                return
            batch, value = item
            started = clock()
            try:
                result = stage.run(value)
            except BaseException as exc:  # a stage that fails leaves its batch undelivered
                self.on_error(f"{self.name} stage {stage.name!r} failed", exc)
                return
            spent = clock() - started
            batch.busy_s += spent
            batch.stage_s[stage.name] = spent
            if outbox is not None:
                outbox.put((batch, result))
                if index == 0:
                    self._free.release()
                continue
            if index == 0:
                self._free.release()
            try:
                self.on_done(batch)
            except BaseException as exc:
                self.on_error(f"{self.name} could not record a delivered batch", exc)
                return
            with self._idle:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.notify_all()
