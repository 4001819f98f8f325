"""Test helpers for integration tests: topic readers (and the worker process, re-exported)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.kafka.reader import ReadRecord, read_topic
from pipeline.stack.worker_process import WorkerProcess

__all__ = [
    "PacedProducer",
    "TopicTally",
    "WorkerProcess",
    "log_events",
    "pid_gone",
    "read_all",
    "rss_kb",
    "values",
    "wait_for",
]


def read_all(
    settings: Settings,
    topic: str,
    expected: int | None = None,
    idle_timeout: float = 20.0,
    deadline_s: float = 180.0,
) -> list[ReadRecord]:
    """Records of `topic` from the beginning, until `expected` arrived or nothing new came."""
    registry = registry_from_settings(settings)
    records: list[ReadRecord] = []
    deadline = time.monotonic() + deadline_s
    for record in read_topic(
        settings.kafka_bootstrap,
        topic,
        registry,
        "beginning",
        max_records=None,
        idle_timeout=idle_timeout,
    ):
        records.append(record)
        if (expected is not None and len(records) >= expected) or time.monotonic() > deadline:
            break
    return records


def values(records: list[ReadRecord]) -> list[dict[str, Any]]:
    assert all(r.value is not None for r in records), [str(r.error) for r in records if r.error]
    return [r.value for r in records]  # type: ignore[misc]


# -- live stream helpers (engine delivery and backpressure tests) ---------------------------


def log_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects among a process's stderr lines (others, e.g. tracebacks, skipped)."""
    events = []
    for line in list(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            events.append(entry)
    return events


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def rss_kb(pid: int) -> int:
    """Resident set size of a live process, in kB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


def pid_gone(pid: int) -> bool:
    """The process no longer runs (never existed, exited and reaped, or a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


class TopicTally:
    """Counts a topic's records by a header (request_id), live, from the beginning.

    A background consumer reads every partition without a consumer group, so tests can watch
    results arrive while workers are killed and restarted, and count duplicates at the end.
    """

    def __init__(self, bootstrap: str, topic: str, header: str = "request_id") -> None:
        self.topic = topic
        self.header = header
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._last_arrival = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"tally-{uuid.uuid4().hex[:8]}",  # never committed
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        self._thread = threading.Thread(target=self._run, name=f"tally-{topic}", daemon=True)

    def start(self) -> TopicTally:
        metadata = self._consumer.list_topics(self.topic, timeout=15).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise LookupError(f"topic {self.topic!r} does not exist")
        self._consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ids = []
                for message in self._consumer.consume(1000, 0.1):
                    if message.error() is not None:
                        continue
                    value = dict(message.headers() or ()).get(self.header)
                    ids.append(value.decode() if value is not None else "")
                if ids:
                    with self._lock:
                        self._counts.update(ids)
                        self._total += len(ids)
                        self._last_arrival = time.monotonic()
        except BaseException as exc:  # surfaced by every reading method
            self._error = exc
        finally:
            self._consumer.close()

    def _check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"tally of {self.topic} failed") from self._error

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> TopicTally:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def total(self) -> int:
        """Records seen, duplicates included."""
        self._check()
        with self._lock:
            return self._total

    @property
    def distinct(self) -> int:
        """Distinct header values (request ids) seen."""
        self._check()
        with self._lock:
            return len(self._counts)

    def counts(self) -> Counter[str]:
        self._check()
        with self._lock:
            return Counter(self._counts)

    def duplicates(self) -> int:
        """Records beyond the first of their request id."""
        with self._lock:
            return self._total - len(self._counts)

    def wait_distinct(self, n: int, timeout: float) -> bool:
        return wait_for(lambda: self.distinct >= n, timeout)

    def wait_quiet(self, quiet_s: float, timeout: float) -> bool:
        """Wait until nothing new arrived for `quiet_s` seconds (late duplicates included)."""

        def quiet() -> bool:
            self._check()
            with self._lock:
                return time.monotonic() - self._last_arrival >= quiet_s

        return wait_for(quiet, timeout, interval=0.1)


class PacedProducer:
    """Sends `records` as requests at about `rate` per second from a background thread.

    A live stream, so that a worker killed or stopped meets requests still arriving.
    `sent` counts the requests handed to the producer so far; `join` flushes and raises what
    went wrong.
    """

    def __init__(
        self,
        settings: Settings,
        records: Sequence[Mapping[str, Any]],
        rate: float,
        reserve: int = 0,
    ) -> None:
        """`reserve`: the last requests are held back until `release()`, so that the stream
        is certainly still going while a test does what must happen mid-stream."""
        self.settings = settings
        self.records = list(records)
        self.rate = rate
        self.reserve = reserve
        self.released = threading.Event()
        self.ids: list[str] = []
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)

    @property
    def sent(self) -> int:
        return len(self.ids)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    def _run(self) -> None:
        from pipeline.core.topics import stream_spec
        from pipeline.kafka.producer import RequestProducer

        try:
            spec = stream_spec("fraud", self.settings.topic_namespace)
            with RequestProducer(self.settings, spec) as producer:
                started = time.monotonic()
                while len(self.ids) < len(self.records) and not self._stop.is_set():
                    limit = len(self.records)
                    if not self.released.is_set():
                        limit -= self.reserve
                    due = min(limit, int((time.monotonic() - started) * self.rate))
                    for record in self.records[len(self.ids) : due]:
                        self.ids.append(producer.send(record))
                    time.sleep(0.01)
        except BaseException as exc:
            self._error = exc
        finally:
            self.finished.set()

    def release(self) -> None:
        """Let the held-back `reserve` go out too."""
        self.released.set()

    def close(self) -> None:
        """Stop sending (a test that failed midway): what was sent is still flushed."""
        self._stop.set()
        self._thread.join(30)

    def join(self, timeout: float = 120) -> list[str]:
        """Wait until every request is sent and acknowledged; their ids, in sending order.

        Releases the reserve first."""
        self.release()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"only {self.sent} of {len(self.records)} requests sent")
        if self._error is not None:
            raise RuntimeError("the paced producer failed") from self._error
        return self.ids
