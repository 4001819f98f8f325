"""Backpressure of the scoring worker: outputs blocked, partitions paused, memory bounded.

The outputs are blocked for real by stopping the Kafka broker with SIGSTOP (the worker's
publisher then waits in `flush`, its stages fill up, and the engine takes no batch). The broker
is a private one, started for this module on spare ports: the session's broker is shared with
other test runs on this machine, and freezing it would stall them too.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import stack as local_stack
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.helpers import (
    TopicTally,
    WorkerProcess,
    log_events,
    port_free,
    rss_kb,
    wait_for,
)

pytestmark = pytest.mark.integration

BACKLOG = 150_000
BLOCKED_S = 8.0  # under the broker's own session timeout (broker.session.timeout.ms, 9 s)
STALL_S = 0.3
# The worker scoring at full speed measures 170-195 MB here (interpreter, numpy, onnxruntime,
# Faust, librdkafka), and no more while blocked. The design bounds what backpressure may add:
# librdkafka's prefetch (INFERSTREAM_CONSUMER_PREFETCH_KBYTES, 8 MB) plus at most 7 batches
# of 256 inside the handler and one being cut. 300 MB leaves ~100 MB for allocator and
# platform noise; an engine that buffered the rest of the backlog (130,000 requests at ~0.8 kB
# each as Python objects) would cross it.
RSS_BOUND_KB = 300 * 1024
WAIT_S = 120.0


@dataclass(frozen=True)
class PrivateBroker:
    bootstrap: str
    pid: int



@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A single-node Kafka of our own (port pair from 19592 up), stopped afterwards."""
    port = next(p for p in range(19592, 19700, 2) if port_free(p) and port_free(p + 1))
    broker_settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        state_dir=tmp_path_factory.mktemp("private-stack"),
    )
    try:
        local_stack.ensure_up(broker_settings, log=lambda _: None, services=["kafka"])
    except local_stack.StackError as exc:
        pytest.fail(f"the private Kafka broker did not come up: {exc}", pytrace=False)
    try:
        kafka = next(s for s in local_stack.status(broker_settings) if s.name == "kafka")
        assert kafka.pid is not None
        yield PrivateBroker(broker_settings.kafka_bootstrap, kafka.pid)
    finally:
        pid = local_stack.status(broker_settings)[0].pid
        if pid is not None:
            os.kill(pid, signal.SIGCONT)  # never leave it stopped, whatever happened
        local_stack.down(broker_settings, log=lambda _: None, services=["kafka"])


class RssSampler:
    """Samples a process's VmRSS every 50 ms, tagged with what the test says is going on."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.phase = "start"
        self.samples: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.samples.append((self.phase, rss_kb(self.pid)))
            except (FileNotFoundError, ProcessLookupError, LookupError):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak_kb(self, phase: str) -> int:
        return max((kb for p, kb in self.samples if p == phase), default=0)


def test_blocked_outputs_pause_partitions_bound_memory_then_catch_up(
    private_broker: PrivateBroker,
    env: dict[str, str],
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """With a large backlog waiting and its outputs blocked (the broker frozen with SIGSTOP
    for 8 s), the worker logs "handler stalled; partitions paused", its resident memory stays
    under RSS_BOUND_KB throughout, it stays up (no DeliveryFailed: the publish timeout is longer
    than the block), logs "partitions resumed" once the broker is back, and every request of
    the backlog ends with a result."""
    env = {
        **env,
        "INFERSTREAM_KAFKA_BOOTSTRAP": private_broker.bootstrap,
        "INFERSTREAM_ENGINE_STALL_S": str(STALL_S),
        "INFERSTREAM_PUBLISH_TIMEOUT_S": "120",
    }
    for key, value in env.items():
        if key.startswith("INFERSTREAM_"):
            monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    ensure_topics(settings.kafka_bootstrap, ["fraud"], settings.topic_partitions, 1, namespace)
    spec = stream_topics("fraud", namespace)
    with RequestProducer(settings, spec) as producer:
        ids = producer.send_many(TransactionGenerator(seed=41).generate(BACKLOG).records)

    worker = WorkerProcess(env)
    with TopicTally(settings.kafka_bootstrap, spec.results) as results:
        try:
            worker.start()
            assert worker.proc is not None
            with RssSampler(worker.proc.pid) as rss:
                rss.phase = "scoring"
                assert results.wait_distinct(20_000, WAIT_S), "\n".join(worker.lines)
                scored_before = results.distinct
                assert scored_before < BACKLOG, "the backlog was gone before the block"
                rss.phase = "blocked"
                blocked_at = time.monotonic()
                os.kill(private_broker.pid, signal.SIGSTOP)
                try:
                    paused = wait_for(
                        lambda: bool(_warnings(worker, "partitions paused")), BLOCKED_S
                    )
                    time.sleep(max(0.0, blocked_at + BLOCKED_S - time.monotonic()))
                    running_while_blocked = worker.running
                finally:
                    os.kill(private_broker.pid, signal.SIGCONT)
                rss.phase = "catching up"
                resumed = wait_for(lambda: bool(_warnings(worker, "partitions resumed")), WAIT_S)
                caught_up = results.wait_distinct(BACKLOG, WAIT_S)
                rss.phase = "done"
            still_running = worker.running
        finally:
            worker.stop()
        scored = results.counts()
    logs = "\n".join(worker.lines)
    peaks = {phase: rss.peak_kb(phase) for phase in ("scoring", "blocked", "catching up")}
    print(
        f"\nbackpressure: {scored_before} of {BACKLOG} scored before the block; peak RSS (MB) "
        + ", ".join(f"{phase} {kb / 1024:.0f}" for phase, kb in peaks.items())
        + f"; {len(_warnings(worker, 'partitions paused'))} pause(s)"
    )
    assert paused, f"no 'handler stalled; partitions paused' warning\n{logs}"
    pause = _warnings(worker, "partitions paused")[0]
    assert pause["msg"] == "handler stalled; partitions paused" and pause["level"] == "warning"
    assert running_while_blocked and still_running, f"the worker exited\n{logs}"
    assert resumed, f"no 'partitions resumed' warning after the broker came back\n{logs}"
    assert caught_up and set(scored) == set(ids), f"{BACKLOG - len(scored)} without a result"
    assert rss.peak_kb("blocked") > 0, "no RSS sample while blocked"
    assert max(peaks.values()) < RSS_BOUND_KB, f"RSS peaks {peaks} kB over {RSS_BOUND_KB} kB"


def _warnings(worker: WorkerProcess, text: str) -> list[dict]:
    return [
        e
        for e in log_events(worker.lines)
        if e.get("logger") == "inferstream.engine" and text in str(e.get("msg"))
    ]
