"""Load shedding: refuse new work a stream's backlog would keep past its deadline.

A thread reads, once a second, each served stream's backlog: the scoring group's committed
offsets on `<stream>.requests` against the partitions' high watermarks (no group is joined),
and its throughput (committed offsets per second, smoothed). The expected wait of a new
request is lag / throughput (endless while the backlog does not move). A key of priority p
accepts a wait up to INFERSTREAM_GATEWAY_SHED_WAIT_S x 2^p, so the lowest priorities are shed
first; a shed submission is a 503 whose Retry-After is the time the backlog needs to shrink
to what the key accepts.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from pipeline.kafka.client_config import KafkaTarget, client_config

log = logging.getLogger("inferstream.gateway")


@dataclass(frozen=True)
class Backlog:
    lag: int = 0
    rate: float = 0.0  # requests per second the workers commit
    at: float = 0.0  # monotonic time of the reading

    @property
    def wait_s(self) -> float:
        if self.lag <= 0:
            return 0.0
        return self.lag / self.rate if self.rate > 0 else math.inf


def refusal(backlog: Backlog, shed_wait_s: float, priority: int) -> float | None:
    """Seconds to wait before retrying when a key of `priority` is shed now, else None."""
    if shed_wait_s <= 0:
        return None
    accepted = shed_wait_s * 2 ** max(0, priority)
    wait = backlog.wait_s
    if wait <= accepted:
        return None
    if math.isinf(wait):
        return accepted  # the backlog does not move: come back after what you would accept
    return wait - accepted  # the time the backlog needs to shrink to what the key accepts


class LagMonitor:
    def __init__(
        self, kafka: KafkaTarget, group_id: str, topics: Mapping[str, str], interval_s: float = 1.0
    ) -> None:
        self.topics = dict(topics)  # stream -> its requests topic
        self.interval_s = interval_s
        self.backlogs: dict[str, Backlog] = {}
        self._committed: dict[str, tuple[int, float]] = {}
        self._consumer = Consumer(
            {**client_config(kafka), "group.id": group_id, "enable.auto.commit": False}
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-lag", daemon=True)

    def start(self) -> LagMonitor:
        self._thread.start()
        return self

    def backlog(self, stream: str) -> Backlog:
        return self.backlogs.get(stream, Backlog())

    def _run(self) -> None:
        while not self._stop.is_set():
            for stream, topic in self.topics.items():
                try:
                    self.backlogs[stream] = self._read(stream, topic)
                except Exception as exc:  # broker unreachable: keep the last reading
                    log.debug("lag of %s: %s", topic, exc)
            self._stop.wait(self.interval_s)

    def _read(self, stream: str, topic: str) -> Backlog:
        metadata = self._consumer.list_topics(topic, timeout=5).topics[topic]
        partitions = [TopicPartition(topic, p) for p in metadata.partitions]
        committed = self._consumer.committed(partitions, timeout=5)
        lag = done = 0
        for tp in committed:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=5, cached=False
            )
            position = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - position)
            done += max(0, position)
        now = time.monotonic()
        previous = self._committed.get(stream)
        self._committed[stream] = (done, now)
        rate = self.backlog(stream).rate
        if previous is not None and now > previous[1]:
            measured = max(0, done - previous[0]) / (now - previous[1])
            rate = measured if rate == 0 else 0.5 * rate + 0.5 * measured
        return Backlog(lag, rate, now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        try:
            self._consumer.close()
        except Exception as exc:
            log.debug("lag monitor close: %s", exc)
