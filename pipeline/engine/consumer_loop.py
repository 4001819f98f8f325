"""The engine's consumer loop: one librdkafka consumer, on its own thread, feeding a handler.

    poll / consume(n, 0) -> InboundMessages -> cut a batch (batcher.py) -> the handler's stages
    (stages.py; the last returns once outputs are delivered) -> tracker -> commit

Delivery rules:
* At-least-once: a partition is committed only up to its delivered prefix (tracker.py),
  every `commit_interval_s` (asynchronously) and synchronously on revoke and stop.
* Rebalance-safe, with cooperative-sticky assignment: on revoke, events of revoked partitions
  not yet handed to the handler are dropped (uncommitted: the next owner reads them), every
  batch in flight is delivered, the revoked partitions' offsets are committed, and only then
  does the callback return; nothing of theirs is committed later. Lost partitions are dropped
  without a commit.
* Backpressure: the loop takes more events only when the handler's first stage is free. If
  the pipeline takes no batch for `stall_s` (the model or the publisher is stuck), every
  assigned partition is paused, and resumed once a batch goes in again. Memory is bounded by
  librdkafka's prefetch (`queued.max.messages.kbytes`), one batch of `batch_max` being
  cut, and at most 2 * stages - 1 batches inside the handler (one per stage, one per inbox).
* Order: batches go through the stages in order, one stage thread each, so the outputs of a
  partition's events are produced in offset order.

A stage or the loop failing is fatal (`on_fatal`; by default the process exits with code 70
without committing, so the undelivered batches are read again after a restart).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline.core.batch import Batch, TopicPartitionKey
from pipeline.core.handler import BatchHandler
from pipeline.core.messages import InboundMessage
from pipeline.engine.batcher import AdaptiveBatcher
from pipeline.engine.config import EngineConfig
from pipeline.engine.stages import StagePipeline
from pipeline.engine.tracker import OffsetTracker
from pipeline.kafka.messages import inbound_message

log = logging.getLogger("inferstream.engine")

EXIT_UNDELIVERED = 70
# commit errors that mean "the group is mid-rebalance; retry with the new generation"
_REBALANCING = frozenset({KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION})


def exit_undelivered(message: str, exc: BaseException | None) -> None:
    """Default fatal handler: exit at once, uncommitted, so a restart re-reads the batches."""
    log.critical("%s; exiting uncommitted so the batches are read again", message, exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_UNDELIVERED)


@dataclass
class EngineStats:
    batches: int = 0
    events: int = 0
    cuts: Counter = field(default_factory=Counter)
    pauses: int = 0
    commits: int = 0
    last_batch_size: int = 0


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        handler: BatchHandler,
        on_ready: Callable[[Engine], None] | None = None,
        on_fatal: Callable[[str, BaseException | None], None] = exit_undelivered,
        batcher: AdaptiveBatcher | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.on_ready = on_ready
        self.on_fatal = on_fatal
        self.batcher = batcher or AdaptiveBatcher(config.batch_max, config.latency_objective_s)
        self.tracker = OffsetTracker()
        self.stats = EngineStats()
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._buffer: list[InboundMessage] = []
        self._arrivals: list[tuple[int, float]] = []  # (events, monotonic arrival) per fetch
        self._seq = 0
        self._paused = False
        self._last_taken = time.monotonic()
        self._last_commit = time.monotonic()
        self._error_logged: dict[int, float] = {}
        self._moved_during_fetch: set[TopicPartitionKey] = set()
        self._finally_committed = False
        self._consumer: Consumer | None = None
        self._pipeline: StagePipeline | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"{config.name}-consumer", daemon=True
        )
        # metrics hook (pipeline/metrics/observer.py EngineObserver), called once per batch:
        # batch_cut(batch, arrivals) here, batch_delivered(batch) on the last stage's thread;
        # loop(engine, consumer) each loop turn (the consumer is not usable from other threads)
        self.observer: Any = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Engine:
        self._pipeline = StagePipeline(
            self.config.name, self.handler.stages(), self._on_delivered, self._fatal
        )
        self._consumer = Consumer(
            {**self.config.consumer_config(), "on_commit": self._on_commit_result}
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Deliver what is in flight, commit it, leave the group. True once fully stopped."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self._stopped.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _fatal(self, message: str, exc: BaseException | None) -> None:
        self._stopping.set()
        self.on_fatal(message, exc)

    def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            consumer.subscribe(
                list(self.config.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self._stopping.is_set():
                self._step(consumer)
                if time.monotonic() - self._last_commit >= self.config.commit_interval_s:
                    self._commit(consumer, asynchronous=True)
                if self.observer is not None:  # metrics hook: lag is sampled on this thread
                    self.observer.loop(self, consumer)  # (it throttles itself to ~1/s)
            self._shutdown(consumer)
        except BaseException as exc:
            self._fatal(f"{self.config.name} consumer loop failed", exc)

    def _shutdown(self, consumer: Consumer) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        self._drop_buffered(None)  # not handed to the handler: read again after a restart
        if not pipeline.drain(self.config.drain_timeout_s):
            self._fatal(f"{self.config.name}: batches still undelivered at stop", None)
            return
        self._final_commit(consumer)
        consumer.close()  # leaves the group (the revoke callback finds nothing left to do)
        pipeline.close()
        self.handler.close()
        self._stopped.set()

    # -- the loop ------------------------------------------------------------------------
    def _step(self, consumer: Consumer) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        if not self._buffer:
            self._fetch(consumer, block_s=0.1)
            return
        if pipeline.acquire(timeout=0.05):
            if not self._paused:
                self._fetch(consumer, block_s=0.0)  # top up with what arrived meanwhile
            if not self._buffer:  # a revoke during the top-up took them all
                pipeline.release()
                return
            self._dispatch()
            if self._paused:
                self._resume(consumer)
            return
        if time.monotonic() - self._last_taken > self.config.stall_s:
            if not self._paused:
                self._pause(consumer)
            # paused: serves rebalance callbacks, and returns at most what was already fetched
            self._fetch(consumer, block_s=0.0)

    def _fetch(self, consumer: Consumer, block_s: float) -> None:
        room = self.config.batch_max - len(self._buffer)
        self._moved_during_fetch.clear()
        if block_s > 0:
            first = consumer.poll(block_s)
            if first is None:
                return
            rest = consumer.consume(room - 1, 0) if room > 1 else []
            raw = [first, *rest]
        else:
            raw = consumer.consume(max(1, room), 0)
            if not raw:
                return
        buffer = self._buffer
        before = len(buffer)
        moved = self._moved_during_fetch  # revoked or lost inside this poll/consume
        for m in raw:
            if m.error() is not None:
                self._consumer_error(m.error())
                continue
            if moved and (m.topic(), m.partition()) in moved:
                continue  # fetched before the revoke: the next owner reads it
            buffer.append(inbound_message(m))
        if len(buffer) > before:
            self._arrivals.append((len(buffer) - before, time.monotonic()))

    def _dispatch(self) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        buffer = self._buffer
        now = time.monotonic()
        age_s = max(0.0, time.time() - buffer[0].timestamp_ms / 1000)
        n, reason = self.batcher.cut(len(buffer), age_s)
        cost = self.config.event_cost
        if cost is not None:
            n, reason = _within_cost(buffer, n, reason, cost, self.config.batch_max_cost)
        self._submit(buffer[:n], reason, now)

    def _submit(self, messages: list[InboundMessage], reason: Any, now: float) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        n = len(messages)
        del self._buffer[:n]
        wait_ms = (now - self._arrivals[0][1]) * 1000
        arrivals = self._take_arrivals(n)
        last: dict[TopicPartitionKey, int] = {}
        for m in messages:
            last[(m.topic, m.partition)] = m.offset
        self._seq += 1
        batch = Batch(self._seq, messages, reason, wait_ms, now, last)
        self.tracker.add(batch.seq, last)
        self._last_taken = now
        stats = self.stats
        stats.batches += 1
        stats.events += n
        stats.cuts[reason] += 1
        stats.last_batch_size = n
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch",
                extra={
                    "engine": self.config.name,
                    "seq": batch.seq,
                    "size": n,
                    "wait_ms": round(wait_ms, 2),
                    "cut": reason,
                },
            )
        if self.observer is not None:  # metrics hook
            self.observer.batch_cut(batch, arrivals)
        pipeline.submit(batch)

    def _take_arrivals(self, n: int) -> list[tuple[int, float]]:
        """Take the arrival chunks of the next `n` events: (events, monotonic arrival)."""
        arrivals = self._arrivals
        taken = []
        while n > 0 and arrivals:
            count, at = arrivals[0]
            if count <= n:
                taken.append(arrivals.pop(0))
                n -= count
            else:
                arrivals[0] = (count - n, at)
                taken.append((n, at))
                n = 0
        return taken

    def _on_delivered(self, batch: Batch) -> None:
        """On the last stage's thread, once the batch's outputs are delivered."""
        self.tracker.done(batch.seq)
        self.batcher.observe(len(batch), batch.busy_s)
        if self.observer is not None:  # metrics hook
            self.observer.batch_delivered(batch)

    # -- commits ---------------------------------------------------------------------------
    def _commit(
        self,
        consumer: Consumer,
        asynchronous: bool,
        partitions: set[TopicPartitionKey] | None = None,
        retriable_quietly: bool = False,
    ) -> KafkaError | None:
        """Commit the delivered prefix; the error, if the commit failed (None: done)."""
        self._last_commit = time.monotonic()
        # a synchronous commit repeats offsets an asynchronous one may have lost
        offsets = self.tracker.to_commit(partitions, only_new=asynchronous)
        if not offsets:
            return None
        listed = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            consumer.commit(offsets=listed, asynchronous=asynchronous)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            # at-least-once: a failed commit only means those events are read again later
            if not (retriable_quietly and error.code() in _REBALANCING):
                log.warning("offset commit failed: %s", error, extra={"engine": self.config.name})
            return error
        self.tracker.committed(offsets)
        self.stats.commits += 1
        return None

    def _final_commit(self, consumer: Consumer) -> None:
        """Commit everything delivered, retrying through a rebalance that is under way.

        A commit sent while the group rebalances comes back REBALANCE_IN_PROGRESS or
        ILLEGAL_GENERATION; the partitions are still ours (cooperative assignment), so keep
        serving the group protocol (partitions paused, nothing taken) and retry with the new
        generation. Giving up would have the next owner redo every batch since the last commit.
        """
        assignment = consumer.assignment()
        if assignment:
            consumer.pause(assignment)
        deadline = time.monotonic() + self.config.final_commit_timeout_s
        while True:
            error = self._commit(consumer, asynchronous=False, retriable_quietly=True)
            if error is None:
                self._finally_committed = True
                return
            if error.code() not in _REBALANCING:
                return  # already logged by _commit
            if time.monotonic() > deadline:
                log.warning(
                    "final offset commit failed; the next owner re-reads the last batches: %s",
                    error,
                    extra={"engine": self.config.name},
                )
                return
            for _ in consumer.consume(self.config.batch_max, 0.2):
                pass  # paused: at most what was already fetched, left uncommitted

    def _on_commit_result(self, error: KafkaError | None, partitions: list) -> None:
        if error is None or error.code() == KafkaError._NO_OFFSET:
            return
        # mid-rebalance rejections are expected; revoke and stop commit synchronously again
        level = logging.INFO if error.code() in _REBALANCING else logging.WARNING
        log.log(
            level,
            "asynchronous offset commit failed: %s",
            error,
            extra={"engine": self.config.name},
        )

    # -- rebalances (called by librdkafka from within poll/consume, on the loop's thread) ----
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={
                "engine": self.config.name,
                "partitions": [f"{p.topic}[{p.partition}]" for p in partitions],
            },
        )
        if not self.ready.is_set():
            self.ready.set()
            if self.on_ready is not None:
                self.on_ready(self)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        if not revoked:
            return
        self._moved_during_fetch |= revoked
        self._drop_buffered(revoked)
        pipeline = self._pipeline
        assert pipeline is not None
        if not pipeline.drain(self.config.drain_timeout_s):
            self._fatal(f"{self.config.name}: in-flight batches undelivered at revoke", None)
            return
        if not self._finally_committed:  # close() after the final commit: nothing new
            self._commit(consumer, asynchronous=False, partitions=revoked)
        self.tracker.forget(revoked)
        log.info(
            "partitions revoked",
            extra={
                "engine": self.config.name,
                "partitions": sorted(f"{t}[{p}]" for t, p in revoked),
            },
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        self._moved_during_fetch |= lost
        self._drop_buffered(lost)
        self.tracker.forget(lost)
        log.warning(
            "partitions lost (no commit; their events are read again by the next owner)",
            extra={"engine": self.config.name, "partitions": sorted(f"{t}[{p}]" for t, p in lost)},
        )

    def _drop_buffered(self, partitions: set[TopicPartitionKey] | None) -> None:
        if partitions is None:
            self._buffer.clear()
            self._arrivals.clear()
            return
        kept = [m for m in self._buffer if (m.topic, m.partition) not in partitions]
        if len(kept) != len(self._buffer):
            oldest = self._arrivals[0][1] if self._arrivals else time.monotonic()
            self._buffer[:] = kept
            self._arrivals[:] = [(len(kept), oldest)] if kept else []

    # -- backpressure ----------------------------------------------------------------------
    def _pause(self, consumer: Consumer) -> None:
        assignment = consumer.assignment()
        if assignment:
            consumer.pause(assignment)
        self._paused = True
        self.stats.pauses += 1
        log.warning(
            "handler stalled; partitions paused",
            extra={
                "engine": self.config.name,
                "stalled_s": round(time.monotonic() - self._last_taken, 1),
                "in_flight": self._pipeline.in_flight if self._pipeline else None,
            },
        )

    def _resume(self, consumer: Consumer) -> None:
        assignment = consumer.assignment()
        if assignment:
            consumer.resume(assignment)
        self._paused = False
        log.warning("handler moving again; partitions resumed", extra={"engine": self.config.name})

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        now = time.monotonic()
        if now - self._error_logged.get(error.code(), -1e9) > 10:
            self._error_logged[error.code()] = now
            log.warning("consumer error: %s", error, extra={"engine": self.config.name})


def _within_cost(
    buffer: list[InboundMessage],
    n: int,
    reason: Any,
    cost: Callable[[bytes | None], int],
    max_cost: int,
) -> tuple[int, Any]:
    """The first events of `buffer[:n]` whose summed cost stays within `max_cost` (at least 1)."""
    total = 0
    for i in range(n):
        total += cost(buffer[i].value)
        if total > max_cost and i > 0:
            return i, "full"
    return n, reason
