"""The metric families and instruments: exact counts, histogram buckets, exposition checked
by prometheus_client's parser and Prometheus's own `promtool check metrics`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from types import SimpleNamespace

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.batch import Batch
from pipeline.metrics import ProcessMetrics
from pipeline.metrics.families import AGE_BUCKETS, BatchHistogram, new_registry
from pipeline.metrics.observer import EngineObserver, ScoringObserver
from pipeline.metrics.targets import prune, read_targets, write_target
from pipeline.scoring import BatchScorer
from pipeline.scoring.handler import ScoringHandler
from pipeline.scoring.provenance import RequestCosts
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.unit.scoring.test_scorer import (
    DECODE,
    PLUGIN,
    REGISTRY,
    SPEC,
    Delivered,
    FakeModel,
    messages,
)


def samples(registry) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(registry, name: str, **labels: str) -> float:
    return samples(registry).get((name, tuple(sorted(labels.items()))), 0.0)


def promtool_check(text: bytes) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (the test suite's stack does)"
    run = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    # exit 0 and nothing said: no error and no lint finding (naming, units, help texts)
    assert run.returncode == 0 and not run.stdout.strip() and not run.stderr.strip(), (
        run.stdout.decode() + run.stderr.decode()
    )


def test_batch_histogram_buckets_are_prometheus_le_buckets():
    registry = CollectorRegistry()
    h = BatchHistogram("event_age_seconds", ("stream", "phase"), AGE_BUCKETS)
    registry.register(h)
    values = np.array([0.0005, 0.001, 0.0011, 0.02, 0.02, 9.0, 11.0])
    h.observe_many(("s", "total"), values[:3])
    h.observe_many(("s", "total"), values[3:])
    got = samples(registry)

    def bucket(le: str) -> float:
        return got[("inferstream_event_age_seconds_bucket",
                    (("le", le), ("phase", "total"), ("stream", "s")))]  # fmt: skip

    assert bucket("0.001") == 2  # le is inclusive
    assert bucket("0.002") == 3
    assert bucket("0.02") == 5
    assert bucket("10.0") == 6
    assert bucket("+Inf") == 7
    key = (("phase", "total"), ("stream", "s"))
    assert got[("inferstream_event_age_seconds_count", key)] == 7
    assert abs(got[("inferstream_event_age_seconds_sum", key)] - values.sum()) < 1e-9


def _batch(n: int, seq: int = 1, stamp_ms: int | None = None) -> Batch:
    records = TransactionGenerator(seed=seq).generate(n).records
    msgs = messages(records)
    stamp = stamp_ms if stamp_ms is not None else time.time_ns() // 1_000_000 - 50
    for m in msgs:
        m.timestamp_ms = stamp
    return Batch(seq, msgs, "idle", 1.0, time.monotonic(), {})


def test_engine_observer_ages_every_event_in_every_phase():
    registry, families = new_registry()
    observer = EngineObserver(families, "fraud")
    batch = _batch(7)
    arrived = time.monotonic() - 0.01
    observer.batch_cut(batch, [(3, arrived - 0.005), (4, arrived)])
    batch.stage_s.update({"prepare": 0.001, "infer": 0.002, "encode": 0.001, "deliver": 0.003})
    observer.batch_delivered(batch)
    for phase in ("broker", "batch", "inference", "publish", "total"):
        count = value(registry, "inferstream_event_age_seconds_count", stream="fraud", phase=phase)
        assert count == 7, phase
    total = value(registry, "inferstream_event_age_seconds_sum", stream="fraud", phase="total")
    assert 7 * 0.04 < total < 7 * 5.0  # records stamped 50 ms before
    assert value(registry, "inferstream_batches_total", stream="fraud", cut="idle") == 1
    assert value(registry, "inferstream_events_consumed_total", stream="fraud") == 7
    assert value(registry, "inferstream_batch_size_count", stream="fraud") == 1
    assert value(registry, "inferstream_batch_size_sum", stream="fraud") == 7
    publish = value(registry, "inferstream_event_age_seconds_sum", stream="fraud", phase="publish")
    assert abs(publish - 7 * 0.003) < 1e-9


def _handler(model, families, costs=None, **kw):
    scorer = BatchScorer(PLUGIN, SPEC, model, REGISTRY, worker_id="w", costs=costs)
    handler = ScoringHandler(scorer, Delivered(), 5.0, 0, retry_backoff_s=0)
    handler.observer = ScoringObserver(families, "fraud", **kw)
    return handler


def test_scoring_observer_counts_outcomes_reasons_tenants_and_cost_exactly():
    registry, families = new_registry()
    handler = _handler(FakeModel(), families, RequestCosts(cpu_threads=3, cpu_price=2.0),
                       top_tenants=2)
    records = TransactionGenerator(seed=5).generate(20).records
    for i, r in enumerate(records):
        r["tenant"] = ["a", "b", "c", "d"][i % 4]
    records[1]["amount"] = float("inf")
    batch = messages(records)
    batch[3].value = b"garbage"
    batch[4].key = None
    scored = handler.handle(Batch(1, batch, "idle", 1.0, 0.0, {}))
    assert scored.scored == 17 and scored.dead_lettered == 3
    assert value(registry, "inferstream_events_total", stream="fraud", outcome="scored") == 17
    assert value(registry, "inferstream_events_total", stream="fraud", outcome="dead_lettered") == 3
    for reason in ("invalid-feature", "bad-magic", "missing-key"):
        assert value(registry, "inferstream_dead_letters_total", stream="fraud", reason=reason) == 1
    per_tenant = {
        t: value(registry, "inferstream_tenant_events_total", stream="fraud", tenant=t)
        for t in ("a", "b", "c", "d", "other")
    }
    assert sum(per_tenant.values()) == 17
    named = [t for t in "abcd" if per_tenant[t]]
    assert len(named) == 2 and per_tenant["other"] > 0  # 2 tenants of their own, then other
    labels = {"stream": "fraud", "model": "fraud", "version": "9.9.9",
              "provider": "CPUExecutionProvider"}  # fmt: skip
    assert value(registry, "inferstream_model_inference_seconds_count", **labels) == 1
    model_s = value(registry, "inferstream_model_inference_seconds_sum", **labels)
    cost = value(registry, "inferstream_cost_units_total", **labels)
    assert cost > 0 and abs(cost - 3 * 2.0 * model_s) < 1e-9  # 3 threads x price 2
    tenant_cost = sum(
        value(registry, "inferstream_tenant_cost_units_total", stream="fraud", tenant=t)
        for t in ("a", "b", "c", "d", "other")
    )
    assert abs(tenant_cost - cost) < 1e-9
    # the counter is the sum of what the 17 provenance records carry
    records = [DECODE(m.value) for m in scored.outbound
               if m.topic == SPEC.provenance]  # fmt: skip
    assert len(records) == 17
    assert abs(sum(r["metered_cost_units"] for r in records) - cost) < 1e-9
    assert abs(sum(r["cpu_seconds"] for r in records) - 3 * model_s) < 1e-9


def test_a_failed_model_batch_counts_its_reason_and_costs_nothing():
    registry, families = new_registry()
    handler = _handler(FakeModel(failures=5), families)
    scored = handler.handle(Batch(1, messages(TransactionGenerator(seed=6).generate(4).records),
                                  "full", 1.0, 0.0, {}))  # fmt: skip
    assert scored.dead_lettered == 4
    assert (
        value(registry, "inferstream_dead_letters_total", stream="fraud", reason="model-error") == 4
    )
    assert value(registry, "inferstream_events_total", stream="fraud", outcome="scored") == 0
    assert "inferstream_cost_units_total" not in {k[0] for k in samples(registry)}


def test_metrics_endpoint_serves_valid_exposition(tmp_path):
    settings = SimpleNamespace(metrics_bind="127.0.0.1", metrics_port=0, app_id="t",
                               metrics_targets_dir=str(tmp_path), state_dir=tmp_path,
                               metrics_top_tenants=10)  # fmt: skip
    metrics = ProcessMetrics(settings, "score", ["fraud"])
    engine = SimpleNamespace(running=False, _consumer=None, tracker=None)
    scorer = BatchScorer(PLUGIN, SPEC, FakeModel(), REGISTRY, worker_id="w")
    handler = ScoringHandler(scorer, Delivered(), 5.0, 0)
    metrics.attach("fraud", engine, handler)
    batch = _batch(5)
    engine.observer.batch_cut(batch, [(5, time.monotonic())])
    handler.handle(batch)
    engine.observer.batch_delivered(batch)
    url = metrics.serve()
    try:
        assert read_targets(tmp_path) == [url.removeprefix("http://")]
        body = urllib.request.urlopen(url + "/metrics", timeout=5).read()
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        for expected in ("inferstream_event_age_seconds", "inferstream_batch_size",
                         "inferstream_events", "inferstream_consumer_lag",
                         "inferstream_cost_units", "inferstream_ready",
                         "process_start_time_seconds"):  # fmt: skip
            assert expected in names, expected
        promtool_check(body)
        ui = urllib.request.urlopen(url + "/ui", timeout=5).read()
        assert b"<canvas" in ui
    finally:
        metrics.close()
    assert read_targets(tmp_path) == []


def test_targets_of_processes_that_are_gone_are_pruned(tmp_path):
    mine = write_target(tmp_path, "127.0.0.1:1", {})
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"{dead.pid}.json").write_text(json.dumps([{"targets": ["127.0.0.1:2"]}]))
    prune(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [mine.name]
    assert mine.name == f"{os.getpid()}.json"


class FakeConsumer:
    """assignment / position / cached watermarks, as the engine's consumer thread sees them."""

    def __init__(self, high: dict[int, int], position: dict[int, int]) -> None:
        self.high, self.pos = high, position

    def assignment(self):
        from confluent_kafka import TopicPartition

        return [TopicPartition("t.requests", p) for p in self.high]

    def position(self, partitions):
        from confluent_kafka import TopicPartition

        return [TopicPartition(tp.topic, tp.partition, self.pos[tp.partition]) for tp in partitions]

    def get_watermark_offsets(self, tp, cached=False):
        assert cached, "no broker round trip from the loop"
        return 0, self.high[tp.partition]


def test_lag_is_high_watermark_minus_committed_and_its_age_grows_until_caught_up():
    from pipeline.engine.tracker import OffsetTracker

    registry, families = new_registry()
    tracker = OffsetTracker()
    tracker.committed({("t.requests", 0): 40})
    engine = SimpleNamespace(tracker=tracker, _error_logged={}, _paused=False)
    observer = EngineObserver(families, "fraud", engine, lag_every_s=0.0)
    from pipeline.metrics.observer import LagCollector

    registry.register(LagCollector({"fraud": observer}))
    consumer = FakeConsumer({0: 100, 1: 7}, {0: 90, 1: 7})
    observer.loop(engine, consumer)
    lag = {p: value(registry, "inferstream_consumer_lag", stream="fraud", topic="t.requests",
                    partition=p) for p in ("0", "1")}  # fmt: skip
    assert lag == {"0": 60.0, "1": 0.0}  # committed 40; partition 1: its position (no commit)
    time.sleep(0.02)
    observer.loop(engine, consumer)
    age = value(registry, "inferstream_consumer_lag_seconds", stream="fraud", topic="t.requests",
                partition="0")  # fmt: skip
    assert age > 0
    tracker.committed({("t.requests", 0): 100})
    observer.loop(engine, consumer)
    assert value(registry, "inferstream_consumer_lag_seconds", stream="fraud",
                 topic="t.requests", partition="0") == 0  # fmt: skip
    assert value(registry, "inferstream_kafka_up", stream="fraud") == 1


def test_drift_collector_exports_each_feature_state():
    import threading

    from pipeline.metrics.observer import DriftCollector

    stats = [SimpleNamespace(feature="amount", statistic=0.3, z=9.0, threshold=5.0),
             SimpleNamespace(feature="hour", statistic=0.01, z=0.5, threshold=5.0)]  # fmt: skip
    monitor = SimpleNamespace(model_name="fraud", model_version="1.0.0",
                              detector=SimpleNamespace(stats=lambda: stats),
                              open_alerts={"amount": {}})  # fmt: skip
    registry = CollectorRegistry()
    handler = SimpleNamespace(monitor=monitor, _lock=threading.Lock())
    registry.register(DriftCollector({"fraud": handler}))
    labels = {"stream": "fraud", "model": "fraud:1.0.0"}
    assert value(registry, "inferstream_drift_alert_open", feature="amount", **labels) == 1
    assert value(registry, "inferstream_drift_alert_open", feature="hour", **labels) == 0
    assert value(registry, "inferstream_drift_z", feature="amount", **labels) == 9.0
    assert value(registry, "inferstream_drift_threshold", feature="hour", **labels) == 5.0
