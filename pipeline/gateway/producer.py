"""The gateway's side of the project's one request producer: sends off the event loop, and a
future per request resolved by its delivery report.

`RequestProducer.send` (pipeline/kafka/producer.py, with `produce_waiting`) does the encoding,
keys, ids and headers. A small submission (up to INLINE_RECORDS records) is sent on the event
loop itself - tens of microseconds, and librdkafka's `produce` only queues - while its queue
has room (so `produce_waiting` never waits there); a bigger one, or one meeting a queue over
half full, goes to one dedicated sender thread. A second thread serves delivery reports, and
each report resolves the asyncio future of its request on the event loop. A record undelivered
within INFERSTREAM_GATEWAY_PRODUCE_TIMEOUT_S fails (librdkafka's `message.timeout.ms`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, Message

from pipeline.config import Settings
from pipeline.core.topics import StreamTopics
from pipeline.kafka.producer import RequestProducer

# records a submission may have to be sent on the event loop: each costs the loop ~50 us
# (encoding, headers, librdkafka's enqueue), less than the hand-off to the sender thread and
# back (two thread wake-ups, each a wait for a CPU on a busy machine)
INLINE_RECORDS = 16
# librdkafka's default queue.buffering.max.messages is 100,000: under half of it, `produce`
# cannot meet a full queue (BufferError, on which produce_waiting would block the loop)
_INLINE_QUEUE_LIMIT = 50_000


class _Producer(RequestProducer):
    """RequestProducer whose delivery reports resolve futures by request id."""

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

    def send_one(self, record: Mapping[str, Any], headers: Mapping[str, str], ticket: int) -> None:
        """`send`, with a delivery report that resolves the request's ticket. Called from the
        gateway's sender thread or, for small submissions, the event loop."""

        def delivered(error: KafkaError | None, message: Message) -> None:
            self.owner._resolve(ticket, None if error is None else str(error))

        self.send(record, headers=headers, on_delivery=delivered)


class GatewayProducer:
    def __init__(self, settings: Settings, streams: Mapping[str, StreamTopics]) -> None:
        self._producers = {
            name: _Producer(settings, topics, self) for name, topics in streams.items()
        }
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        # delivery reports of the current poll, handed to the event loop together
        self._settled: list[tuple[tuple[asyncio.AbstractEventLoop, Any], str | None]] = []
        self._tickets = itertools.count()
        self._lock = threading.Lock()
        # what the sender thread has still to send; one wake-up drains all of it
        self._queue: list[
            tuple[_Producer, Sequence[Mapping[str, Any]], Mapping[str, str], list[int]]
        ] = []
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

    def _resolve(self, ticket: int, error: str | None) -> None:
        with self._lock:
            entry = self._pending.pop(ticket, None)
            if entry is not None:
                self._settled.append((entry, error))

    def _hand_over(self) -> None:
        """The reports of one poll to their event loops, one call each: one wake-up of the
        loop (a write to its self-pipe) per poll, not per record."""
        with self._lock:
            if not self._settled:
                return
            settled, self._settled = self._settled, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, str | None]]] = {}
        for (loop, future), error in settled:
            by_loop.setdefault(loop, []).append((future, error))
        for loop, items in by_loop.items():
            # a closed loop: nobody waits for these any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_many, items)

    async def send(
        self, stream: str, records: Sequence[Mapping[str, Any]], headers: Mapping[str, str]
    ) -> None:
        """Produce `records` (ids already set) and wait until the broker acknowledged each;
        raises RuntimeError with the reason when one failed, was refused or timed out."""
        loop = asyncio.get_running_loop()
        futures = []
        tickets = []
        with self._lock:
            for _ in records:
                ticket = next(self._tickets)
                future: asyncio.Future[None] = loop.create_future()
                self._pending[ticket] = (loop, future)
                futures.append(future)
                tickets.append(ticket)
            producer = self._producers[stream]
            inline = (
                len(records) <= INLINE_RECORDS
                and not self._draining  # behind queued records: their turn first
                and len(producer._producer) < _INLINE_QUEUE_LIMIT
            )
            start = False
            if not inline:
                self._queue.append((producer, records, headers, tickets))
                start = not self._draining
                self._draining = True
        if inline:
            self._send_all(producer, records, headers, tickets)
        if start:
            self._sender.submit(self._drain)
        try:
            await asyncio.gather(*futures)
        finally:
            with self._lock:
                for ticket in tickets:
                    self._pending.pop(ticket, None)

    def _drain(self) -> None:
        """On the sender thread: send everything queued, until the queue is empty."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._draining = False
                    return
            for producer, records, headers, tickets in batch:
                self._send_all(producer, records, headers, tickets)

    def _send_all(
        self,
        producer: _Producer,
        records: Sequence[Mapping[str, Any]],
        headers: Mapping[str, str],
        tickets: Sequence[int],
    ) -> None:
        for record, ticket in zip(records, tickets, strict=True):
            try:
                producer.send_one(record, headers, ticket)
            except Exception as exc:  # a record the schema refuses, a full queue
                self._resolve(ticket, f"{type(exc).__name__}: {exc}")
        # refusals, and the reports `send`'s poll(0) served here (the rest come from _poll)
        self._hand_over()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._poller.join(2)
        self._sender.shutdown(wait=True)
        for producer in self._producers.values():
            producer._producer.flush(timeout)


def _settle_many(items: Sequence[tuple[asyncio.Future[None], str | None]]) -> None:
    for future, error in items:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(RuntimeError(error))
