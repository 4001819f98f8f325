"""Test helpers for integration tests: topic names, request senders, topic readers, the
worker process (re-exported) and the tracker of what a session creates on the broker.

They speak to the pipeline from outside, as a client would: topic names as `inferstream
topics ensure` creates them, requests encoded with `pipeline.codec` and produced as `inferstream
produce` sends them, results read back from the topics.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.core.topics import StreamTopics
from pipeline.kafka.client_config import KafkaTarget, bootstrap_of, client_config
from pipeline.kafka.producer import RequestProducer, traceparent
from pipeline.kafka.reader import ReadRecord, read_topic
from pipeline.stack.worker_process import WorkerProcess

__all__ = [
    "CleanupReport",
    "KafkaNames",
    "PacedProducer",
    "RequestSender",
    "TopicTally",
    "WorkerProcess",
    "fraud_topics",
    "log_events",
    "new_traceparent",
    "pid_gone",
    "read_all",
    "rss_kb",
    "send_requests",
    "values",
    "wait_for",
]


# -- topic names and requests ---------------------------------------------------------------


def fraud_topics(namespace: str) -> StreamTopics:
    """The fraud stream's topics in one namespace: `<namespace>fraud.<kind>`."""
    return stream_topics("fraud", namespace)


new_traceparent = traceparent  # a valid W3C `traceparent` for a new, sampled trace


class RequestSender(RequestProducer):
    """`RequestProducer` for the fraud stream of the test's namespace: keyed by card_id,
    idempotent, headers request_id, traceparent and tenant; `send(..., headers=,
    timestamp_ms=)`. Use as a context manager: every request is acknowledged at the end."""

    def __init__(self, settings: Settings, **config: Any) -> None:
        super().__init__(settings, fraud_topics(settings.topic_namespace), **config)


def send_requests(settings: Settings, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Produce `records` as requests, all acknowledged; their ids, in order."""
    with RequestSender(settings) as sender:
        return sender.send_many(records)


# -- reading topics -------------------------------------------------------------------------


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
        settings,
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
    `target`: Settings, or a bare bootstrap with the process's security settings (client_config).
    """

    def __init__(self, target: KafkaTarget, topic: str, header: str = "request_id") -> None:
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
                **client_config(target),
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
        self._end = len(self.records)  # end_after() brings it forward
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
        try:
            with RequestSender(self.settings) as producer:
                started = time.monotonic()
                while len(self.ids) < self._end and not self._stop.is_set():
                    limit = self._end
                    if not self.released.is_set():
                        limit = min(limit, len(self.records) - self.reserve)
                    due = min(limit, int((time.monotonic() - started) * self.rate))
                    for record in self.records[len(self.ids) : due]:
                        self.ids.append(producer.send(record))
                    time.sleep(0.01)
        except BaseException as exc:
            self._error = exc
        finally:
            self.finished.set()

    def end_after(self, tail: int) -> None:
        """End the stream `tail` requests (at the rate) from now, so that a test ends it when
        what had to happen mid-stream happened, instead of sizing it for the slowest machine;
        releases the reserve."""
        self._end = min(len(self.records), self.sent + tail)
        self.release()

    def release(self) -> None:
        """Let the held-back `reserve` go out too."""
        self.released.set()

    def close(self) -> None:
        """Stop sending (a test that failed midway): what was sent is still flushed."""
        self._stop.set()
        if self._thread.ident is not None:  # a test may fail before it started sending
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


# -- what a session creates on the broker ---------------------------------------------------


@dataclass
class CleanupReport:
    topics: list[str] = field(default_factory=list)  # deleted
    groups: list[str] = field(default_factory=list)  # consumer groups deleted
    left: list[str] = field(default_factory=list)  # "what: why" for each that could not be


class KafkaNames:
    """The topics and consumer groups a test session creates, to delete them at its end.

    The broker may outlive the session (it answered before the session began, another session
    shares it, --keep-stack, or the next start reuses its data directory), and what the tests
    created would pile up on it. Each test works in names of its own (the `namespace` fixture:
    topics `t<id>.*`, consumer groups and Faust's topics `inferstream-t<id>*`): `track(prefix)`
    marks every topic and consumer group whose name starts with `prefix` as the session's.
    Some tests use fixed names that are not theirs alone (the demo's `demo.` namespace):
    `track_if_new(prefix)` marks only the matching names that did not exist when the tracker
    was made, so that a user's own topics and groups on a reused broker are left alone.
    """

    def __init__(self, target: KafkaTarget, timeout: float = 30.0) -> None:
        self.bootstrap = bootstrap_of(target)
        self.timeout = timeout
        self.prefixes: set[str] = set()
        self.new_only: set[str] = set()
        self._admin = AdminClient(client_config(target))  # secured stacks too
        self._existed_topics = self._topics()
        self._existed_groups = self._groups()

    def track(self, prefix: str) -> str:
        self._check(prefix)
        self.prefixes.add(prefix)
        return prefix

    def track_if_new(self, prefix: str) -> str:
        self._check(prefix)
        self.new_only.add(prefix)
        return prefix

    @staticmethod
    def _check(prefix: str) -> None:
        if len(prefix) < 3 or prefix.startswith("_"):  # "", "t", "__consumer_offsets", ...
            raise ValueError(f"prefix {prefix!r} would match names that are not the session's")

    def _topics(self) -> set[str]:
        return set(self._admin.list_topics(timeout=self.timeout).topics)

    def _groups(self) -> set[str]:
        listing = self._admin.list_consumer_groups(request_timeout=self.timeout)
        return {group.group_id for group in listing.result(self.timeout).valid}

    def _ours(self, names: Iterable[str], existed: set[str]) -> list[str]:
        tracked, new_only = tuple(self.prefixes), tuple(self.new_only)
        return sorted(
            name
            for name in names
            if name.startswith(tracked) or (name.startswith(new_only) and name not in existed)
        )

    def created(self) -> tuple[list[str], list[str]]:
        """The session's topics and consumer groups on the broker now."""
        return (
            self._ours(self._topics(), self._existed_topics),
            self._ours(self._groups(), self._existed_groups),
        )

    def cleanup(self, group_wait_s: float = 20.0) -> CleanupReport:
        """Delete the session's topics and consumer groups. A group that still has members (a
        worker killed moments ago keeps its membership until its session times out) is retried
        for `group_wait_s`; whatever could not be deleted is in the report's `left`."""
        topics, groups = self.created()
        report = CleanupReport()
        if topics:
            futures = self._admin.delete_topics(topics, operation_timeout=self.timeout)
            for name, future in futures.items():
                problem = _admin_problem(future, self.timeout, KafkaError.UNKNOWN_TOPIC_OR_PART)
                if problem:
                    report.left.append(f"topic {name}: {problem}")
                else:
                    report.topics.append(name)
        pending, deadline = groups, time.monotonic() + group_wait_s
        while pending:
            retry = []
            futures = self._admin.delete_consumer_groups(pending, request_timeout=self.timeout)
            for name, future in futures.items():
                problem = _admin_problem(future, self.timeout, KafkaError.GROUP_ID_NOT_FOUND)
                if problem and "NON_EMPTY_GROUP" in problem and time.monotonic() < deadline:
                    retry.append(name)
                elif problem:
                    report.left.append(f"consumer group {name}: {problem}")
                else:
                    report.groups.append(name)
            pending = retry
            if pending:
                time.sleep(1.0)
        # deleted topics leave the metadata a moment after the call returns
        deleted = set(report.topics)
        if not wait_for(lambda: not deleted & self._topics(), self.timeout, interval=0.2):
            report.left += [
                f"topic {name}: still listed" for name in sorted(deleted & self._topics())
            ]
        report.topics.sort()
        report.groups.sort()
        return report


def _admin_problem(future: Any, timeout: float, gone_code: int) -> str | None:
    """None when an admin operation succeeded (or found the thing already gone), else why not."""
    try:
        future.result(timeout)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError):
            return None if error.code() == gone_code else f"{error.name()}: {error.str()}"
        return str(exc)
    return None


def port_free(port: int) -> bool:
    """Nothing listens on (or holds) 127.0.0.1:`port`: a test's private server may bind it."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
