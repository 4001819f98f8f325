"""One configuration: fresh topics and group, a flat-out backlog, then fixed offered rates."""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench.collector import Collector
from bench.events import Event, EventPool, load_backlog, produce_paced, request_producer
from bench.targets import Target, cpu_seconds
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.core.topics import StreamTopics
from pipeline.kafka.admin import ensure_topics, topic_names
from pipeline.kafka.client_config import client_config
from pipeline.kafka.reader import read_topic
from pipeline.stack.worker_process import WorkerProcess


@dataclass(frozen=True)
class Plan:
    settings: Settings
    run_id: str
    events: int  # flat-out backlog size
    rate_seconds: float  # length of each fixed-rate phase
    loads: tuple[float, ...]  # fractions of the reference's flat-out rate
    keep_topics: bool = False


@dataclass
class Phase:
    name: str
    events: list[Event]
    rate: float | None = None  # offered events/s; None: flat out from a backlog
    sent_at: list[float] = field(default_factory=list)


@dataclass
class Setup:
    """One configuration's fresh topics, its loaded backlog and its (not yet started) worker."""

    namespace: str
    app_id: str
    spec: StreamTopics
    flat: Phase
    load_s: float  # seconds the backlog took to produce
    process: WorkerProcess


def set_up(target: Target, index: int, plan: Plan, pool: EventPool) -> Setup:
    """Fresh topics (namespace `bench-<run id>-<index>.`), the flat-out backlog produced."""
    cfg = plan.settings
    namespace = f"bench-{plan.run_id}-{index}."
    app_id = f"inferstream-{namespace}"
    spec = stream_topics("fraud", namespace)
    ensure_topics(cfg.kafka_bootstrap, ["fraud"], cfg.topic_partitions, 1, namespace)
    flat = Phase("flat", pool.events(0, target.backlog(plan.events)))
    load_s = load_backlog(cfg.kafka_bootstrap, spec.requests, flat.events)
    state_dir = str(cfg.state_dir / "bench" / namespace.rstrip("."))
    process = target.process(target.env(namespace, app_id, state_dir))
    return Setup(namespace, app_id, spec, flat, load_s, process)


def offered_rates(
    plan: Plan, loads: tuple[float, ...], reference_rate: float | None, own_rate: Any, name: str
) -> list[float]:
    """`loads` x the reference's flat-out rate; without a reference run, x this config's own."""
    rate = reference_rate or own_rate
    if not rate:
        raise RuntimeError(f"{name}: no flat-out throughput to derive rates from")
    return [rate * load for load in loads]


def run_target(
    target: Target, index: int, plan: Plan, pool: EventPool, reference_rate: float | None
) -> dict[str, Any]:
    """Measure `target` flat out, then at the plan's loads x the reference's flat-out rate."""
    cfg = plan.settings
    setup = set_up(target, index, plan, pool)
    spec, flat, process = setup.spec, setup.flat, setup.process
    collector = Collector(cfg.kafka_bootstrap, spec.results)
    collector.start()
    collector.started.wait(15)
    marks: dict[str, float] = {}
    collector.on_first = lambda: marks.setdefault("cpu_first", worker_cpu(process))
    started = time.monotonic()
    out: dict[str, Any] = {"target": target.name, "namespace": setup.namespace}
    try:
        process.start(timeout=120)
        # startup is not measured: until the worker (all its processes) said ready
        marks.update(ready_at=time.time(), cpu_ready=worker_cpu(process))
        out["startup_s"] = round(time.monotonic() - started, 2)
        busy0 = system_busy()
        complete = collector.wait(len(flat.events), timeout=300, idle=20)
        busy1 = system_busy()
        out["flat"] = _flat_result(
            flat, collector, marks, worker_cpu(process), complete, setup.load_s
        )
        out["flat"]["system_busy_cores"] = busy_cores(busy0, busy1)
        out["loadavg_1m"] = loadavg()
        rates = offered_rates(
            plan, plan.loads, reference_rate, out["flat"].get("events_per_s"), target.name
        )
        out["rates"] = rates
        out["loads"] = _rate_phases(
            plan, pool, rates, collector, process, spec, out["flat"].get("events_per_s")
        )
    finally:
        process.stop()
        collector.stop()
    out["duplicates"] = collector.duplicates
    if target.has_provenance:
        out["batches"] = _batch_sizes(cfg, spec.provenance, len(collector.arrivals), pool, plan)
    if not plan.keep_topics:
        delete_topics(cfg.kafka_bootstrap, setup.namespace)
    return out


def system_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores busy between two `system_busy()` readings: the broker, the bench, anyone else."""
    share = (after[0] - before[0]) / max(1, after[1] - before[1])
    return round(share * (os.cpu_count() or 1), 2)


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def worker_cpu(process: WorkerProcess) -> float:
    """CPU seconds of the worker and its descendants (a supervisor's engine processes)."""
    assert process.proc is not None
    return cpu_seconds(process.proc.pid)


def _flat_result(
    phase: Phase,
    collector: Collector,
    marks: dict[str, float],
    cpu_end: float,
    complete: bool,
    load_s: float,
) -> dict[str, Any]:
    arrivals = collector.arrivals
    times = np.array([arrivals[e.request_id] for e in phase.events if e.request_id in arrivals])
    start, cpu_start, counted_from = flat_start(
        times, marks["ready_at"], marks.get("cpu_first"), marks["cpu_ready"]
    )
    counted = int(np.count_nonzero(times > start))
    if counted < 1:
        return {"events": len(phase.events), "completed": len(times), "complete": False}
    span = float(times.max() - start)
    return {
        "events": len(phase.events),
        "completed": len(times),
        "complete": complete,
        "events_per_s": round(counted / span, 1) if span > 0 else None,
        "span_s": round(span, 3),
        "counted": counted,
        "counted_from": counted_from,
        "cpu_s_per_1k": round((cpu_end - cpu_start) / counted * 1000, 4),
        "backlog_load_s": round(load_s, 3),
    }


def flat_start(
    times: np.ndarray, ready_at: float, cpu_first: float | None, cpu_ready: float
) -> tuple[float, float, str]:
    """Where the flat-out interval starts: (time, CPU mark, why), startup left out.

    From the first output (the events that came with it are not counted), or, when outputs
    came before the worker said ready (a supervisor is ready when its last process is; the
    first one has scored meanwhile, and the group rebalances when the next joins), from the
    ready line, provided at least half of the events came after it.
    """
    if len(times) == 0:
        return ready_at, cpu_ready, "ready"
    first = float(times.min())
    if first < ready_at and np.count_nonzero(times > ready_at) >= len(times) / 2:
        return ready_at, cpu_ready, "ready"
    return first, cpu_first if cpu_first is not None else cpu_ready, "first output"


def live_producer(plan: Plan, spec: StreamTopics) -> Producer:
    """The fixed-rate phases' producer, warmed up on a topic no worker reads.

    An idempotent producer's first records wait ~0.5 s for its id and metadata: not ours to
    measure.
    """
    producer = request_producer(plan.settings.kafka_bootstrap)
    producer.produce(spec.shadow, b"warm-up")
    producer.flush(30)
    return producer


def _rate_phases(
    plan: Plan,
    pool: EventPool,
    rates: list[float],
    collector: Collector,
    process: WorkerProcess,
    spec: StreamTopics,
    flat_rate: float | None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    offset = plan.events
    producer = live_producer(plan, spec)
    saturated = False
    for load, rate in zip(plan.loads, rates, strict=True):
        count = max(1, round(rate * plan.rate_seconds))
        events = pool.events(offset, offset + count)
        offset += count
        own_max = flat_rate or 0.0
        if saturated or rate > 1.1 * own_max:
            reason = "saturated" if saturated else "above this config's flat-out rate"
            results.append({"load": load, "offered_per_s": round(rate, 1), "skipped": reason})
            continue
        time.sleep(0.5)  # let the previous phase's commits and acks settle
        expected = len(collector.arrivals) + count
        sent_at = [0.0] * count
        cpu0, busy0 = worker_cpu(process), system_busy()
        achieved = produce_paced(producer, spec.requests, events, rate, sent_at)
        last_sent = max(sent_at)
        complete = collector.wait(expected, timeout=max(15.0, 2 * plan.rate_seconds), idle=8)
        cpu1, busy1 = worker_cpu(process), system_busy()
        arrivals = collector.arrivals
        got = [
            (arrivals[e.request_id], sent_at[i])
            for i, e in enumerate(events)
            if e.request_id in arrivals
        ]
        latency = np.array([(a - s) * 1000 for a, s in got])
        drain_s = (max(a for a, _ in got) - last_sent) if got else None
        saturated = not complete or (
            drain_s is not None and drain_s > 1.0 + 0.1 * plan.rate_seconds
        )
        results.append(
            {
                "load": load,
                "offered_per_s": round(rate, 1),
                "achieved_offer_per_s": round(achieved, 1),
                "events": count,
                "completed": len(got),
                "saturated": saturated,
                "drain_s": None if drain_s is None else round(drain_s, 3),
                "cpu_s_per_1k": round((cpu1 - cpu0) / max(1, len(got)) * 1000, 4),
                # the whole machine: the bench's own producer and collector share the cores
                "system_busy_cores": busy_cores(busy0, busy1),
                **percentiles(latency),
            }
        )
    return results


def percentiles(latency_ms: np.ndarray) -> dict[str, float | None]:
    if len(latency_ms) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(latency_ms, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(latency_ms.max()), 2),
    }


def _batch_sizes(
    cfg: Settings, topic: str, expected: int, pool: EventPool, plan: Plan
) -> dict[str, Any]:
    """Batch-size distribution per phase, from provenance batch_id / batch_size."""
    flat_ids = {e.request_id for e in pool.events(0, plan.events)}
    sizes: dict[str, dict[str, int]] = defaultdict(dict)
    registry = registry_from_settings(cfg)
    for n, record in enumerate(
        read_topic(cfg.kafka_bootstrap, topic, registry, "beginning", None, idle_timeout=3)
    ):
        value = record.value
        if value is not None:
            phase = "flat" if value["request_id"] in flat_ids else "loads"
            sizes[phase][value["batch_id"]] = value["batch_size"]
        if n + 1 >= expected:
            break
    return {phase: _size_stats(list(by_id.values())) for phase, by_id in sizes.items()}


def _size_stats(sizes: list[int]) -> dict[str, Any]:
    arr = np.array(sizes)
    return {
        "batches": len(sizes),
        "mean": round(float(arr.mean()), 1),
        "event_weighted_mean": round(float((arr * arr).sum() / arr.sum()), 1),
        "p50": int(np.percentile(arr, 50)),
        "p95": int(np.percentile(arr, 95)),
        "max": int(arr.max()),
    }


def delete_topics(bootstrap: str, namespace: str) -> None:
    """The config's topics, Faust's own (`<app id>-__assignor-__leader`, ...) and its groups."""
    admin = AdminClient(client_config(bootstrap))
    app_id = f"inferstream-{namespace}"
    names = set(topic_names(["fraud"], namespace))
    names |= {t for t in admin.list_topics(timeout=15).topics if t.startswith(app_id)}
    futures = list(admin.delete_topics(sorted(names)).values())
    # the committed offsets of a config's groups would outlive its topics on the broker
    # (group ids are prefixed by the namespace: pipeline.assembly.group_id)
    group = f"{namespace}{app_id}"
    futures += admin.delete_consumer_groups([group, f"{group}-drift"]).values()
    for future in futures:
        with contextlib.suppress(Exception):  # already gone or never created
            future.result(30)
