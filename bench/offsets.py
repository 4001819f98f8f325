"""A consumer group's progress on a topic, sampled: committed offsets, end offsets, lag.

For a worker without per-request output (the drift engine) the group's committed offsets are
the only outside view of what it has finished. The sampler never subscribes, so it does not
join the group it watches: `Consumer.committed()` only asks the group coordinator.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from pipeline.kafka.client_config import client_config


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.time() when the reply came
    committed: int  # summed over the partitions (a partition never committed counts as 0)
    end: int  # summed high watermarks

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


class OffsetSampler(threading.Thread):
    """Samples `group`'s committed offsets and `topic`'s end offsets every `interval` seconds."""

    def __init__(self, bootstrap: str, topic: str, group: str, interval: float = 0.02) -> None:
        super().__init__(name=f"offsets-{group}", daemon=True)
        self.interval = interval
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._consumer = Consumer(
            {**client_config(bootstrap), "group.id": group, "enable.auto.commit": False}
        )
        metadata = self._consumer.list_topics(topic, timeout=15).topics[topic]
        self._partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        self._halt = threading.Event()

    def run(self) -> None:
        consumer, partitions = self._consumer, self._partitions
        try:
            while not self._halt.is_set():
                try:
                    committed = consumer.committed(partitions, timeout=5)
                    end = sum(
                        consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1]
                        for tp in partitions
                    )
                except Exception as exc:  # the coordinator is busy: try again, say so at the end
                    self.error = repr(exc)
                    self._halt.wait(self.interval)
                    continue
                done = sum(max(0, tp.offset) for tp in committed)  # OFFSET_INVALID is negative
                self.samples.append(Sample(time.time(), done, end))
                self._halt.wait(self.interval)
        finally:
            self._consumer.close()

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def wait_committed(self, expected: int, timeout: float, idle: float) -> bool:
        """Until `expected` offsets are committed (True), or `timeout`/`idle` seconds passed."""
        deadline = time.monotonic() + timeout
        seen, last_change = -1, time.monotonic()
        while True:
            sample = self.latest
            done = sample.committed if sample is not None else 0
            if done >= expected:
                return True
            now = time.monotonic()
            if done != seen:
                seen, last_change = done, now
            if now > deadline or now - last_change > idle:
                return False
            time.sleep(0.005)

    def between(self, start: float, stop: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= stop]

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
