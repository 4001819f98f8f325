"""Fraud latency at a fixed offered rate, alone and while a docs worker drains a backlog.

One fraud worker (`inferstream worker --no-cache`, its own namespace and group) is offered the
same rate three times, as bench/measure.py offers its fixed-rate phases (paced RequestProducer
settings, record timestamp = send time, latency = result arrival - send): alone, then while a
second worker process (`inferstream worker --streams docs`, its own INFERSTREAM_APP_ID and
namespace) consumes a backlog of documents, then alone again (the machine's drift meanwhile).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.collector import Collector
from bench.docs_pipeline import Space, produce_documents, worker_env
from bench.events import EventPool, produce_paced, request_producer
from bench.measure import busy_cores, percentiles, system_busy
from bench.targets import cpu_seconds
from pipeline.config import Settings
from pipeline.stack.worker_process import WorkerProcess

WARM_UP_S = 1.5  # offered before the first phase: a fresh worker's first batches are slow




class FraudLoad:
    """The fraud worker, its collector and a warmed-up producer; `phase()` offers one rate."""

    def __init__(self, settings: Settings, space: Space, rate: float, seconds: float) -> None:
        self.settings, self.space, self.rate, self.seconds = settings, space, rate, seconds
        self.pool = EventPool(settings)
        self.offset = 0
        self.collector = Collector(settings.kafka_bootstrap, space.topics.results)
        self.process = WorkerProcess(worker_env(settings, space), "fraud", "--no-cache")
        self.producer = request_producer(settings.kafka_bootstrap)

    def __enter__(self) -> FraudLoad:
        self.collector.start()
        self.collector.started.wait(15)
        self.producer.produce(self.space.topics.shadow, b"warm-up")  # producer id, metadata
        self.producer.flush(30)
        try:
            self.process.start(timeout=120)
            self.phase("warm-up", WARM_UP_S)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()
        self.collector.stop()

    def phase(self, name: str, seconds: float | None = None) -> dict[str, Any]:
        count = max(1, round(self.rate * (seconds or self.seconds)))
        events = self.pool.events(self.offset, self.offset + count)
        self.offset += count
        time.sleep(0.5)  # the previous phase's commits and acks settle
        expected = len(self.collector.arrivals) + count
        sent_at = [0.0] * count
        assert self.process.proc is not None
        cpu0, busy0 = cpu_seconds(self.process.proc.pid), system_busy()
        achieved = produce_paced(
            self.producer, self.space.topics.requests, events, self.rate, sent_at
        )
        complete = self.collector.wait(expected, timeout=max(15.0, 2 * self.seconds), idle=8)
        cpu1, busy1 = cpu_seconds(self.process.proc.pid), system_busy()
        arrivals = self.collector.arrivals
        got = [(arrivals[e.request_id], sent_at[i]) for i, e in enumerate(events)
               if e.request_id in arrivals]  # fmt: skip
        latency = np.array([(a - s) * 1000 for a, s in got])
        drain_s = (max(a for a, _ in got) - max(sent_at)) if got else None
        limit_s = 1.0 + 0.1 * self.seconds  # bench/measure.py's saturation rule
        return {
            "phase": name,
            "offered_per_s": round(self.rate, 1),
            "achieved_offer_per_s": round(achieved, 1),
            "events": count,
            "completed": len(got),
            "complete": complete,
            "drain_s": None if drain_s is None else round(drain_s, 3),
            "saturated": not complete or (drain_s is not None and drain_s > limit_s),
            "fraud_worker_cores": round((cpu1 - cpu0) / max(1e-9, time.time() - min(sent_at)), 3),
            "system_busy_cores": busy_cores(busy0, busy1),
            **percentiles(latency),
        }


def fraud_with_docs(
    settings: Settings,
    fraud: Space,
    docs: Space,
    records: list[dict[str, Any]],
    rate: float,
    seconds: float,
    log: Any,
) -> dict[str, Any]:
    """p99 alone, with the docs worker draining `records`, alone again."""
    produce_documents(settings, docs, records)
    log(f"[docs-bench]   {len(records)} docs queued for the concurrent docs worker")
    out: dict[str, Any] = {"offered_per_s": rate, "phase_s": seconds, "docs_backlog": len(records)}
    with FraudLoad(settings, fraud, rate, seconds) as load:
        out["alone"] = load.phase("alone")
        log(f"[docs-bench]   fraud alone: p99 {out['alone']['p99_ms']} ms")
        docs_collector = Collector(settings.kafka_bootstrap, docs.topics.results)
        docs_collector.start()
        docs_collector.started.wait(15)
        docs_worker = WorkerProcess(worker_env(settings, docs), "docs", "--no-cache")
        try:
            docs_worker.start(timeout=180)
            # the docs worker is scoring (its first results are out) before the phase starts
            docs_collector.wait(1, timeout=120, idle=120)
            assert docs_worker.proc is not None
            done0, cpu0, t0 = (len(docs_collector.arrivals), cpu_seconds(docs_worker.proc.pid),
                               time.time())  # fmt: skip
            with_docs = load.phase("with_docs")
            done1, cpu1, t1 = (len(docs_collector.arrivals), cpu_seconds(docs_worker.proc.pid),
                               time.time())  # fmt: skip
        finally:
            docs_worker.stop()
            docs_collector.stop()
        with_docs.update(
            docs_done_during=done1 - done0,
            docs_per_s_during=round((done1 - done0) / (t1 - t0), 2),
            docs_worker_cores=round((cpu1 - cpu0) / (t1 - t0), 3),
            # the docs worker had work left until the end of the phase
            docs_busy_throughout=done1 < len(records),
        )
        out["with_docs"] = with_docs
        log(f"[docs-bench]   fraud with docs: p99 {with_docs['p99_ms']} ms "
            f"(docs worker {with_docs['docs_worker_cores']} cores)")  # fmt: skip
        out["alone_after"] = load.phase("alone_after")
        log(f"[docs-bench]   fraud alone again: p99 {out['alone_after']['p99_ms']} ms")
    return out
