"""Arrival times of output records, by the `request_id` header, read as they are written."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.kafka.client_config import client_config


class Collector(threading.Thread):
    """Reads `topic` from the beginning on its own thread; `arrivals[request_id]` = first seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name=f"collector-{topic}", daemon=True)
        self.topic = topic
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.on_first: Callable[[], None] | None = None
        self._consumer = Consumer(
            {
                **client_config(bootstrap),
                "group.id": "inferstream-bench-collector",  # never committed
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "fetch.error.backoff.ms": 5,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=15).topics[topic]
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        )
        self._halt = threading.Event()
        self.started = threading.Event()

    def run(self) -> None:
        arrivals, poll, consume = self.arrivals, self._consumer.poll, self._consumer.consume
        try:
            while not self._halt.is_set():
                # poll() returns as soon as one record is there; consume(n, timeout) would wait
                # for n records or the whole timeout and so blur arrival times by up to it.
                first = poll(0.02)
                now = time.time()
                self.started.set()
                if first is None:
                    continue
                for message in [first, *consume(num_messages=5000, timeout=0)]:
                    if message.error() is not None:
                        continue
                    request_id = _request_id(message.headers())
                    if request_id is None:
                        continue
                    if request_id in arrivals:
                        self.duplicates += 1
                    else:
                        if not arrivals and self.on_first is not None:
                            self.on_first()
                        arrivals[request_id] = now
        finally:
            self._consumer.close()

    def wait(self, expected: int, timeout: float, idle: float) -> bool:
        """Until `expected` distinct ids arrived (True), or `timeout`/`idle` seconds passed."""
        deadline = time.monotonic() + timeout
        seen, last_change = len(self.arrivals), time.monotonic()
        while len(self.arrivals) < expected:
            now = time.monotonic()
            if now > deadline or now - last_change > idle:
                return False
            time.sleep(0.005)
            if len(self.arrivals) != seen:
                seen, last_change = len(self.arrivals), time.monotonic()
        return True

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _request_id(headers: list[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == "request_id":
            return value.decode()
    return None
