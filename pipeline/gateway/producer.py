"""The gateway's side of the project's one request producer: sends off the event loop, and one
future per submission resolved by its records' delivery reports.

A submission's records come from the intake complete (schema defaults, request id, tenant), so
they are sent as a batch (`_Producer.send_batch`): every record encoded first (one the schema
refuses fails the submission before any record is produced), then each handed to librdkafka
through `produce_waiting`, the project's one produce-with-backpressure, without a poll per
record (the delivery thread serves the reports). A small submission (up to INLINE_RECORDS
records) is sent on the event loop itself - librdkafka's `produce` only queues - while its
queue has room (so `produce_waiting` never waits there); a bigger one, or one meeting a queue
over half full, goes to one dedicated sender thread. A second thread serves delivery reports;
they count down the submission's records and its one asyncio future is resolved on the event
loop when the last is acknowledged, or at the first failure. A record undelivered within
INFERSTREAM_GATEWAY_PRODUCE_TIMEOUT_S fails (librdkafka's `message.timeout.ms`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.config import Settings
from pipeline.core.topics import StreamTopics
from pipeline.kafka.producer import RequestProducer, produce_waiting

# records a submission may have to be sent on the event loop: each costs the loop ~10 us
# (encoding, headers, librdkafka's enqueue), so a list of 100 holds it ~1 ms - less than the
# hand-off to the sender thread and back (two thread wake-ups, each a wait for a CPU and the
# GIL on a busy machine)
INLINE_RECORDS = 100
# librdkafka's default queue.buffering.max.messages is 100,000: under half of it, `produce`
# cannot meet a full queue (BufferError, on which produce_waiting would block the loop)
_INLINE_QUEUE_LIMIT = 50_000

# W3C trace ids from a PRNG seeded once: random, not secrets, and no os.urandom call per
# record (a syscall that hands back the GIL, and waits to get it again on a busy machine)
_trace_bits = random.Random(os.urandom(32)).getrandbits


def _traceparent() -> bytes:
    return f"00-{_trace_bits(128) | 1:032x}-{_trace_bits(64) | 1:016x}-01".encode()


class Submission:
    """One submission's records on their way to the broker: the reports count down to its
    future; the first failure settles it at once (later reports then change nothing)."""

    __slots__ = ("future", "left", "loop", "settled")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.left = count
        self.settled = False


class _Producer(RequestProducer):
    """RequestProducer that sends a submission's completed records as one batch."""

    def __init__(self, settings: Settings, stream: StreamTopics, owner: GatewayProducer) -> None:
        super().__init__(
            settings,
            stream,
            **{
                "linger.ms": 2,
                "message.timeout.ms": int(settings.gateway_produce_timeout_s * 1000),
            },
        )
        self.owner = owner

    def send_batch(
        self, records: Sequence[Mapping[str, Any]], headers: Mapping[str, str], batch: Submission
    ) -> None:
        """`send` of records the intake completed (defaults, request_id and tenant set, so
        nothing is filled in here), each with its request_id and a new traceparent header
        before `headers`; every delivery report goes to `batch`. Raises ValueError (nothing
        produced) when the schema refuses one. Called from the sender thread or, for small
        submissions, the event loop."""
        values = [self.serialize(record) for record in records]
        key_field = self.plugin.key_field
        topic = self.stream.requests
        extra = [(k, v.encode()) for k, v in headers.items()]
        report = self.owner._report

        def delivered(error: KafkaError | None, message: Message) -> None:
            report(batch, error)

        for record, value in zip(records, values, strict=True):
            key = record.get(key_field)
            produce_waiting(
                self._producer,
                topic,
                value,
                None if key is None else str(key).encode(),
                [("request_id", str(record["request_id"]).encode()),
                 ("traceparent", _traceparent()), *extra],
                on_delivery=delivered,
            )  # fmt: skip
        # no poll here: the delivery thread serves every report, and a poll hands back the GIL
        # (~0.1 ms to get it again on a busy machine, where the event loop calls this)


class GatewayProducer:
    def __init__(self, settings: Settings, streams: Mapping[str, StreamTopics]) -> None:
        self._producers = {
            name: _Producer(settings, topics, self) for name, topics in streams.items()
        }
        # submissions settled by the current poll's reports, handed to the event loop together
        self._settled: list[tuple[Submission, str | None]] = []
        self._lock = threading.Lock()
        # what the sender thread has still to send; one wake-up drains all of it
        self._queue: list[tuple[_Producer, Sequence[Mapping[str, Any]], Mapping[str, str],
                                Submission]] = []  # fmt: skip
        self._draining = False
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="gateway-produce")
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="gateway-deliveries", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        # one round of polls takes ~20 ms whatever the number of streams: a report of one
        # stream's producer waits at most that long behind the others' (idle) polls
        timeout = 0.02 / max(len(self._producers), 1)
        while not self._stop.is_set():
            for producer in self._producers.values():
                producer._producer.poll(timeout)
            self._hand_over()

    def _report(self, batch: Submission, error: KafkaError | str | None) -> None:
        """One record's delivery report (or refusal) for its submission."""
        with self._lock:
            if batch.settled:
                return
            if error is None:
                batch.left -= 1
                if batch.left > 0:
                    return
            batch.settled = True
            self._settled.append((batch, None if error is None else str(error)))

    def _hand_over(self) -> None:
        """The submissions settled since the last call to their event loops, one call each:
        one wake-up of the loop (a write to its self-pipe) per poll, not per record."""
        with self._lock:
            if not self._settled:
                return
            settled, self._settled = self._settled, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Submission, str | None]]] = {}
        for batch, error in settled:
            by_loop.setdefault(batch.loop, []).append((batch, error))
        for loop, items in by_loop.items():
            # a closed loop: nobody waits for these any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_many, items)

    async def send(
        self, stream: str, records: Sequence[Mapping[str, Any]], headers: Mapping[str, str]
    ) -> None:
        """Produce `records` (ids already set) and wait until the broker acknowledged each;
        raises RuntimeError with the reason when one failed, was refused or timed out."""
        if not records:
            return
        batch = Submission(asyncio.get_running_loop(), len(records))
        producer = self._producers[stream]
        with self._lock:
            inline = (
                len(records) <= INLINE_RECORDS
                and not self._draining  # behind queued records: their turn first
                and len(producer._producer) < _INLINE_QUEUE_LIMIT
            )
            start = False
            if not inline:
                self._queue.append((producer, records, headers, batch))
                start = not self._draining
                self._draining = True
        if inline:
            self._send_all(producer, records, headers, batch)
        if start:
            self._sender.submit(self._drain)
        try:
            await batch.future
        finally:  # cancelled (a timeout): later reports change nothing
            with self._lock:
                batch.settled = True

    def _drain(self) -> None:
        """On the sender thread: send everything queued, until the queue is empty."""
        while True:
            with self._lock:
                queued, self._queue = self._queue, []
                if not queued:
                    self._draining = False
                    return
            for producer, records, headers, batch in queued:
                self._send_all(producer, records, headers, batch)

    def _send_all(
        self,
        producer: _Producer,
        records: Sequence[Mapping[str, Any]],
        headers: Mapping[str, str],
        batch: Submission,
    ) -> None:
        try:
            producer.send_batch(records, headers, batch)
        except Exception as exc:  # a record the schema refuses, a queue full for too long
            self._report(batch, f"{type(exc).__name__}: {exc}")
        self._hand_over()  # a refusal: answered now, not at the delivery thread's next poll

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._poller.join(2)
        self._sender.shutdown(wait=True)
        for producer in self._producers.values():
            producer._producer.flush(timeout)


def _settle_many(items: Sequence[tuple[Submission, str | None]]) -> None:
    for batch, error in items:
        if batch.future.done():
            continue
        if error is None:
            batch.future.set_result(None)
        else:
            batch.future.set_exception(RuntimeError(error))
