"""The confluent-kafka consumer behaviour the engine's loop is built on, pinned against the broker.

The engine (pipeline/engine/consumer_loop.py) blocks in `poll(t)` for the first event, tops
up with `consume(n, 0)`, and pauses/resumes its assignment under backpressure. Upstream has
broken `consume(num_messages, timeout)` before (confluent-kafka 2.13.0 returned the first
non-empty 200 ms chunk, confluent-kafka-python #2205): an upgrade that changes any of this
fails here first. Time bounds appear only where the timing is the behaviour under test, with
a generous margin (MARGIN_S) for a loaded machine.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.stack import StackInfo

pytestmark = pytest.mark.integration

MARGIN_S = 1.0
PARTITIONS = 2


@pytest.fixture
def topic(stack: StackInfo) -> Iterator[str]:
    """A fresh two-partition topic, deleted afterwards."""
    name = f"conformance-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    for future in admin.create_topics([NewTopic(name, PARTITIONS, 1)]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while not admin.list_topics(name, timeout=10).topics[name].partitions:
        assert time.monotonic() < deadline, f"topic {name} not visible"
        time.sleep(0.1)
    yield name
    admin.delete_topics([name])


@pytest.fixture
def producer(stack: StackInfo) -> Iterator[Producer]:
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 0})
    yield producer
    producer.flush(10)


def _produce(producer: Producer, topic: str, start: int, count: int) -> None:
    """Values str(i) for i in [start, start+count), round-robin over the partitions."""
    for i in range(start, start + count):
        producer.produce(topic, str(i).encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


def _consumer(stack: StackInfo, topic: str, **extra: object) -> Consumer:
    """A consumer configured as the engine's (manual commits, cooperative-sticky), assigned
    every partition from the beginning."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"conformance-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            **extra,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    return consumer


def _good(messages: list[Message]) -> list[Message]:
    assert all(m.error() is None for m in messages), [m.error() for m in messages]
    return messages


def _wait_first(consumer: Consumer) -> Message:
    """Block until the first message is there (the assignment and first fetch take a moment)."""
    message = consumer.poll(30)
    assert message is not None and message.error() is None
    return message


def test_consume_returns_at_most_n_messages(
    stack: StackInfo, topic: str, producer: Producer
) -> None:
    """consume(num_messages=n, timeout=t) never returns more than n messages; with more than
    n available it returns exactly n per call, in order, none lost or repeated."""
    total, n = 1 + 7 * 30, 7
    _produce(producer, topic, 0, total)
    consumer = _consumer(stack, topic)
    try:
        got = [_wait_first(consumer)]
        while len(got) < total:
            batch = _good(consumer.consume(num_messages=n, timeout=10))
            assert len(batch) == n, f"{len(batch)} returned for num_messages={n}"
            got += batch
    finally:
        consumer.close()
    assert len(got) == total
    for p in range(PARTITIONS):
        offsets = [m.offset() for m in got if m.partition() == p]
        expected = len(range(p, total, PARTITIONS))
        assert offsets == list(range(expected)), f"partition {p}: not each offset exactly once"


def test_consume_with_timeout_waits_for_n_then_returns_within_the_timeout(
    stack: StackInfo, topic: str, producer: Producer
) -> None:
    """Messages trickling in (one every 100 ms): consume(10, t) collects all 10 rather than
    returning the first that arrived (what confluent-kafka 2.13.0 did, #2205), and with fewer
    than n arriving it returns what came once t has passed, within t + MARGIN_S."""
    consumer = _consumer(stack, topic)
    try:
        _produce(producer, topic, 0, 1)
        _wait_first(consumer)

        def trickle() -> None:
            for i in range(1, 13):
                _produce(producer, topic, i, 1)
                time.sleep(0.1)

        thread = threading.Thread(target=trickle)
        thread.start()
        batch = _good(consumer.consume(num_messages=10, timeout=10))
        thread.join()
        assert len(batch) == 10, f"returned {len(batch)} of 10 long before the timeout"

        time.sleep(0.5)  # the last two are fetched; nothing else is coming
        started = time.monotonic()
        rest = _good(consumer.consume(num_messages=100, timeout=2.0))
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
    values = sorted(int(m.value()) for m in batch + rest)
    assert values == list(range(1, 13)), values
    assert 2.0 - 0.1 <= elapsed <= 2.0 + MARGIN_S, f"consume(100, 2.0) took {elapsed:.2f} s"


def test_consume_with_zero_timeout_returns_at_once_with_what_is_queued(
    stack: StackInfo, topic: str, producer: Producer
) -> None:
    """consume(n, 0) never waits: it returns at once what the client already fetched (the
    engine's top-up of a batch), and an empty list when nothing is queued."""
    _produce(producer, topic, 0, 500)
    consumer = _consumer(stack, topic)
    try:
        _wait_first(consumer)
        time.sleep(1.0)  # the rest of the 500 is fetched into the client's queue meanwhile
        started = time.monotonic()
        queued = _good(consumer.consume(1000, 0))
        took_queued = time.monotonic() - started
        started = time.monotonic()
        empty = consumer.consume(1000, 0)
        took_empty = time.monotonic() - started
    finally:
        consumer.close()
    assert len(queued) == 499, f"{len(queued)} of the 499 queued messages returned"
    assert empty == []
    assert took_queued < MARGIN_S and took_empty < MARGIN_S, (took_queued, took_empty)


def test_poll_returns_one_message_as_soon_as_one_is_there(
    stack: StackInfo, topic: str, producer: Producer
) -> None:
    """poll(t) on an empty topic returns the first message produced meanwhile, long before
    t; poll returns one message at a time; and poll(t) with nothing coming returns None
    within t + MARGIN_S."""
    consumer = _consumer(stack, topic)
    try:
        started = time.monotonic()
        nothing = consumer.poll(1.0)
        took_nothing = time.monotonic() - started
        timer = threading.Timer(0.5, _produce, (producer, topic, 0, 3))
        timer.start()
        started = time.monotonic()
        first = consumer.poll(20)
        took_first = time.monotonic() - started
        timer.join()
        second = consumer.poll(10)
    finally:
        consumer.close()
    assert nothing is None and took_nothing <= 1.0 + MARGIN_S, took_nothing
    assert first is not None and first.error() is None
    assert took_first < 0.5 + 2 * MARGIN_S, f"poll(20) returned after {took_first:.2f} s"
    assert second is not None and second.value() != first.value()


def test_pause_stops_delivery_and_resume_continues_from_the_next_offset(
    stack: StackInfo, topic: str, producer: Producer
) -> None:
    """pause(assignment) stops delivery at once, also of messages already fetched into the
    client's queue, and also of messages produced while paused; resume(assignment) continues
    from the first message not yet returned: every offset exactly once, in order."""
    _produce(producer, topic, 0, 2000)
    consumer = _consumer(stack, topic)
    try:
        got = [_wait_first(consumer)]
        while len(got) < 300:
            got += _good(consumer.consume(50, 5))
        time.sleep(0.5)  # much more than 300 is prefetched by now
        consumer.pause(consumer.assignment())
        during: list[Message] = []
        paused_until = time.monotonic() + 2.0
        while time.monotonic() < paused_until:
            during += consumer.consume(100, 0.2)
        _produce(producer, topic, 2000, 500)
        during += consumer.consume(100, 1.0)
        consumer.resume(consumer.assignment())
        after: list[Message] = []
        deadline = time.monotonic() + 30
        while len(got) + len(after) < 2500 and time.monotonic() < deadline:
            after += _good(consumer.consume(500, 0.5))
    finally:
        consumer.close()
    assert during == [], f"{len(during)} messages delivered while paused"
    every = got + after
    for p in range(PARTITIONS):
        offsets = [m.offset() for m in every if m.partition() == p]
        assert offsets == list(range(1250)), f"partition {p}: offsets lost or repeated"
