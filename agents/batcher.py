"""Micro-batches from a Faust stream whose window starts at the oldest buffered event.

Faust's `take_events(max, within)` restarts its timer on every loop and stops buffering while
the loop body runs, so `within` does not bound how long an event waits. This batcher buffers
in a background task (also while a batch is being processed, up to `max_size` events) and
hands out a batch when `max_size` events are buffered or when the oldest buffered event has
waited `window_s` since it was received, whichever comes first.

Acks are manual: the stream's automatic acks are off, and `ack()` acknowledges a batch; the
caller does it after the batch's outputs are delivered. Events never acked are consumed again
after a restart or rebalance (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType

import faust
from faust.types import EventT


class DeadlineBatcher:
    def __init__(self, stream: faust.StreamT, max_size: int, window_s: float) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.stream = stream
        self.max_size = max_size
        self.window_s = max(0.0, window_s)
        self._events: deque[EventT] = deque()
        self._received: deque[float] = deque()  # monotonic receive time of each buffered event
        self._space = asyncio.Event()  # set when a batch was taken out of a full buffer
        self._waiter: asyncio.Future[None] | None = None  # next_batch() waiting for events
        self._wake_at = 1  # buffered events that wake the waiter: 1 when empty, else max_size
        self._fill_task: asyncio.Task[None] | None = None
        self._fill_error: BaseException | None = None

    async def __aenter__(self) -> DeadlineBatcher:
        self.stream.enable_acks = False  # acked in ack(), after the outputs are delivered
        self._fill_task = asyncio.ensure_future(self._fill())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fill_task is not None:
            self._fill_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fill_task

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _fill(self) -> None:
        events, received, space = self._events, self._received, self._space
        clock, max_size = time.monotonic, self.max_size
        try:
            async for event in self.stream.events():
                events.append(event)
                received.append(clock())
                if self._waiter is not None and len(events) >= self._wake_at:
                    self._wake()
                while len(events) >= max_size:
                    space.clear()
                    await space.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced to the agent by next_batch()
            self._fill_error = exc
            self._wake()
            raise

    async def next_batch(self) -> list[EventT]:
        """`max_size` events, or those buffered once the oldest has waited `window_s`."""
        events, loop = self._events, asyncio.get_running_loop()
        while True:
            if self._fill_error is not None:
                raise RuntimeError("stream iteration failed") from self._fill_error
            if len(events) >= self.max_size:
                break
            timer: asyncio.TimerHandle | None = None
            if events:
                remaining = self._received[0] + self.window_s - time.monotonic()
                if remaining <= 0:
                    break
                self._wake_at = self.max_size
                timer = loop.call_later(remaining, self._wake)
            else:
                self._wake_at = 1
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        n = min(len(events), self.max_size)
        batch = [events.popleft() for _ in range(n)]
        for _ in range(n):
            self._received.popleft()
        self._space.set()
        return batch

    async def ack(self, events: Sequence[EventT]) -> None:
        ack = self.stream.ack
        for event in events:
            await ack(event)
