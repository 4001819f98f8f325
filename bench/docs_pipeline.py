"""The docs pipeline against the real broker: a backlog of documents, then the real worker.

Fresh topics in their own namespace (`<prefix>docs.*`) and a consumer group of their own; the
documents are produced with the project's RequestProducer before `inferstream worker --streams
docs --no-cache` starts; the bench's Collector stamps each result's arrival on `docs.results`.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from confluent_kafka.admin import AdminClient

from bench.collector import Collector
from bench.measure import busy_cores, loadavg, system_busy
from bench.targets import cpu_seconds
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.core.topics import StreamTopics
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.client_config import client_config
from pipeline.kafka.producer import RequestProducer
from pipeline.stack.worker_process import WorkerProcess


@dataclass
class Space:
    """One stream's fresh topics and consumer group for a part of the run."""

    stream: str
    namespace: str
    app_id: str
    topics: StreamTopics


def new_space(settings: Settings, stream: str, namespace: str, app_id: str) -> Space:
    ensure_topics(settings.kafka_bootstrap, [stream], settings.topic_partitions, 1, namespace)
    return Space(stream, namespace, app_id, stream_topics(stream, namespace))


def worker_env(settings: Settings, space: Space) -> dict[str, str]:
    return dict(
        os.environ,
        INFERSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        INFERSTREAM_TOPIC_NAMESPACE=space.namespace,
        INFERSTREAM_APP_ID=space.app_id,
        INFERSTREAM_STATE_DIR=str(settings.state_dir / "bench" / space.namespace.rstrip(".")),
        INFERSTREAM_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )


def produce_documents(settings: Settings, space: Space, records: list[dict[str, Any]]) -> float:
    """Send every record with RequestProducer and wait for delivery; returns the seconds taken."""
    started = time.perf_counter()
    producer = RequestProducer(settings, space.topics, check_records=False)  # built here
    for record in records:
        producer.send(record)
    producer.flush(120)
    return time.perf_counter() - started


def encoded_values(settings: Settings, space: Space, records: list[dict[str, Any]]) -> list[bytes]:
    """The Avro bytes the worker will see of each record (for the engine's window cost)."""
    producer = RequestProducer(settings, space.topics)
    return [producer.serialize(r) for r in records]


def run_pipeline(
    settings: Settings, space: Space, records: list[dict[str, Any]], timeout_s: float, log: Any
) -> dict[str, Any]:
    """Produce the backlog, start the worker, wait for every result; rates from arrivals."""
    produce_s = produce_documents(settings, space, records)
    log(f"[docs-bench]   {len(records)} docs produced in {produce_s:.1f} s")
    collector = Collector(settings.kafka_bootstrap, space.topics.results)
    collector.start()
    collector.started.wait(15)
    process = WorkerProcess(worker_env(settings, space), "docs", "--no-cache")
    started = time.time()
    out: dict[str, Any] = {"docs": len(records), "produce_s": round(produce_s, 3)}
    try:
        process.start(timeout=180)
        ready_at = time.time()
        out["startup_s"] = round(ready_at - started, 2)
        assert process.proc is not None
        cpu0, busy0 = cpu_seconds(process.proc.pid), system_busy()
        complete = _wait_logged(collector, len(records), timeout_s, log)
        cpu1, busy1 = cpu_seconds(process.proc.pid), system_busy()
    finally:
        process.stop()
        collector.stop()
    arrivals = collector.arrivals
    times = np.array([arrivals[r["request_id"]] for r in records if r["request_id"] in arrivals])
    out.update(completed=len(times), complete=complete, duplicates=collector.duplicates)
    if len(times):
        first, last = float(times.min()), float(times.max())
        counted = int(np.count_nonzero(times > first))  # the first result's batch: not counted
        span = last - first
        out.update(
            docs_per_s=round(counted / span, 2) if span > 0 and counted else None,
            counted=counted,
            span_s=round(span, 3),
            # wall: from the worker's ready line (model loaded) to the last result
            wall_s=round(last - ready_at, 3),
            wall_docs_per_s=round(len(times) / (last - ready_at), 2) if last > ready_at else None,
            # from the worker's start (process, model load) to the last result
            total_s=round(last - started, 3),
            cpu_s_per_1k=round((cpu1 - cpu0) / len(times) * 1000, 3),
            system_busy_cores=busy_cores(busy0, busy1),
            loadavg_1m=loadavg(),
        )
    return out


def _wait_logged(collector: Collector, expected: int, timeout_s: float, log: Any) -> bool:
    deadline, last_log = time.monotonic() + timeout_s, time.monotonic()
    while time.monotonic() < deadline:
        if collector.wait(expected, timeout=5, idle=60):
            return True
        if time.monotonic() - last_log >= 10:
            last_log = time.monotonic()
            log(f"[docs-bench]   pipeline: {len(collector.arrivals)}/{expected} results")
    return len(collector.arrivals) >= expected


def delete_space(bootstrap: str, space: Space) -> None:
    """The space's topics (and Faust's, prefixed by its app id) and its consumer groups."""
    admin = AdminClient(client_config(bootstrap))
    names = {
        t
        for t in admin.list_topics(timeout=15).topics
        if t.startswith(space.namespace) or t.startswith(space.app_id)
    }
    futures = list(admin.delete_topics(sorted(names)).values()) if names else []
    group = f"{space.namespace}{space.app_id}"
    futures += admin.delete_consumer_groups([group, f"{group}-drift"]).values()
    for future in futures:
        with contextlib.suppress(Exception):  # already gone or never created
            future.result(30)
