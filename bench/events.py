"""The benchmark's requests: generated and Avro-encoded once per run, identical for every config."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Producer

from pipeline.codec import AvroSerializer, registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.client_config import client_config
from pipeline.kafka.producer import produce_waiting
from pipeline.streams.fraud.generator import TransactionGenerator

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Event:
    request_id: str
    key: bytes
    value: bytes
    headers: Headers


class EventPool:
    """A seeded, growing list of encoded requests: `events(a, b)` is the same in every config."""

    def __init__(self, settings: Settings, seed: int = 20240917) -> None:
        registry = registry_from_settings(settings)
        schema = registry.catalog.latest("fraud_request")  # type: ignore[attr-defined]
        self._encode = AvroSerializer(registry, schema, stream_topics("fraud").requests)
        self._generator = TransactionGenerator(seed=seed)
        self._events: list[Event] = []

    def events(self, start: int, stop: int) -> list[Event]:
        if stop > len(self._events):
            self._grow(stop - len(self._events))
        return self._events[start:stop]

    def _grow(self, n: int) -> None:
        for record in self._generator.generate(n).records:
            request_id = str(record["request_id"])
            headers = [
                ("request_id", request_id.encode()),
                ("tenant", str(record["tenant"]).encode()),
            ]
            key = str(record["card_id"]).encode()
            self._events.append(Event(request_id, key, self._encode(record), headers))


def request_producer(bootstrap: str) -> Producer:
    """Producer settings of `RequestProducer`, with linger 1 ms so it adds little latency."""
    return Producer(
        {
            **client_config(bootstrap),
            "enable.idempotence": True,
            "linger.ms": 1,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def produce(producer: Producer, topic: str, event: Event, timestamp_ms: int = 0) -> None:
    produce_waiting(
        producer, topic, event.value, event.key, event.headers, timestamp=timestamp_ms
    )


def load_backlog(bootstrap: str, topic: str, events: list[Event]) -> float:
    """Produce `events` as fast as possible and wait for delivery; returns the seconds it took."""
    started = time.perf_counter()
    producer = request_producer(bootstrap)
    for event in events:
        produce(producer, topic, event)
    if producer.flush(60):
        raise RuntimeError(f"backlog of {topic} not delivered")
    return time.perf_counter() - started


def produce_paced(
    producer: Producer, topic: str, events: list[Event], rate: float, sent_at: list[float]
) -> float:
    """Produce `events` at `rate` per second; the record timestamp is the send time (ms).

    `sent_at[i]` gets the same clock reading at full precision. Returns the achieved rate.
    """
    clock, wall = time.perf_counter, time.time
    start = clock()
    n, i = len(events), 0
    while i < n:
        due = min(n, int((clock() - start) * rate) + 1)
        while i < due:
            now = wall()
            produce(producer, topic, events[i], int(now * 1000))
            sent_at[i] = now
            i += 1
        producer.poll(0)
        delay = i / rate - (clock() - start)
        if delay > 0:
            time.sleep(delay)
    elapsed = clock() - start
    producer.flush(30)
    return n / elapsed if elapsed > 0 else float("inf")
