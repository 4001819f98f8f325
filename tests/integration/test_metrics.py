"""Metrics end to end: a real worker (and drift worker) scraped by a real Prometheus that the
test starts on loopback (Debian's `prometheus`, installed when missing).

Checked through Prometheus's HTTP API: counters equal the test's own counts (scored,
dead-lettered by reason), histogram counts equal events, the p99 of the event-age histogram
lies in the bucket of the p99 the test measured itself, lag drains to 0 and equals the
broker's lag from an admin query, every PromQL expression of the rules and the dashboard
parses and returns a series; a worker restart drops `up` and brings it back; `/ui` in
headless chromium shows the figures; `inferstream top --once` prints them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import REPO_ROOT, Settings
from pipeline.metrics.families import AGE_BUCKETS
from pipeline.stack.prometheus import LocalPrometheus
from pipeline.stack.worker_process import WorkerProcess
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.browser import chromium
from tests.integration.helpers import (
    PacedProducer,
    RequestSender,
    fraud_topics,
    log_events,
    read_all,
    values,
    wait_for,
)

pytestmark = pytest.mark.integration

SENT = 2400
BAD = 12  # every 200th request has amount=inf: dead letter `invalid-feature`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def targets(tmp_path: Path, env: dict[str, str]) -> Path:
    directory = tmp_path / "targets"
    env["INFERSTREAM_METRICS_TARGETS_DIR"] = str(directory)
    return directory


@pytest.fixture
def prometheus(targets: Path, settings: Settings, tmp_path: Path):
    prom = LocalPrometheus(
        settings, port=free_port(), targets=targets, directory=tmp_path / "prometheus"
    )
    prom.start(lambda line: print(f"[prometheus] {line}", file=sys.stderr))
    yield prom
    prom.stop()


def scalar(prom: LocalPrometheus, expr: str) -> float | None:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else None


def wait_value(prom: LocalPrometheus, expr: str, want: float, timeout: float = 60) -> float | None:
    wait_for(lambda: scalar(prom, expr) == want, timeout, interval=0.5)
    return scalar(prom, expr)


def broker_lag(settings: Settings, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        committed = consumer.committed(parts, timeout=10)
        total = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            total += high - max(tp.offset, 0)
        return total
    finally:
        consumer.close()


def measured_ages(settings: Settings, expected: int) -> np.ndarray:
    """Result record timestamp - request record timestamp, per scored request (seconds)."""
    topics = fraud_topics(settings.topic_namespace)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})  # fmt: skip
    stamps: dict[str, dict[str, int]] = {"req": {}, "res": {}}
    try:
        for kind, topic in (("req", topics.requests), ("res", topics.results)):
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
            want = SENT if kind == "req" else expected
            idle = time.monotonic()
            while len(stamps[kind]) < want and time.monotonic() - idle < 15:
                for m in consumer.consume(1000, 0.5):
                    if m.error():
                        continue
                    idle = time.monotonic()
                    rid = dict(m.headers() or [])["request_id"].decode()
                    stamps[kind][rid] = m.timestamp()[1]
            consumer.unassign()
    finally:
        consumer.close()
    ages = [stamps["res"][r] - stamps["req"][r] for r in stamps["res"] if r in stamps["req"]]
    assert len(ages) == expected
    return np.asarray(ages, dtype=np.float64) / 1000.0


def bucket_bounds(value: float) -> tuple[float, float]:
    """The histogram buckets' bounds around `value`, widened by one bucket each side (the
    test's clock points and the worker's differ by the produce call)."""
    bounds = [0.0, *AGE_BUCKETS, float("inf")]
    i = next(k for k in range(1, len(bounds)) if value <= bounds[k])
    return bounds[max(0, i - 2)], bounds[min(len(bounds) - 1, i + 1)]


SUPERVISOR_METRIC = "inferstream_worker_restarts_total"  # served only under --processes N


def rule_and_panel_expressions(supervised: bool = False) -> list[str]:
    """Every rule's and panel's expression; `supervised`: only those over the supervisor's
    metric (checked where a supervisor runs), else all the others."""
    exprs = []
    rules = yaml.safe_load((REPO_ROOT / "ops/prometheus/rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            if "alert" in rule:  # the signal, without its threshold: it must return a series
                expr = re.sub(r"\s*(>|<|==|>=)\s*[\d.]+(\s*\*\s*[\d.]+)?", "", expr)
            if (SUPERVISOR_METRIC in expr) == supervised:
                exprs.append(expr)
    dashboard = json.loads((REPO_ROOT / "ops/grafana/dashboards/inferstream.json").read_text())
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])
                  if (SUPERVISOR_METRIC in t["expr"]) == supervised]  # fmt: skip
    assert len(exprs) > (1 if supervised else 20)
    return exprs


def test_prometheus_scrapes_the_worker_and_its_numbers_match_the_tests(
    env, settings, targets, prometheus, worker_factory
):
    scorer = worker_factory("score")
    drift = worker_factory("drift")
    records = TransactionGenerator(seed=151).generate(SENT).records
    for i in range(0, SENT, SENT // BAD):
        records[i]["amount"] = float("inf")
    for i, r in enumerate(records):
        r["tenant"] = f"tenant-{i % 3}"
    PacedProducer(settings, records, rate=600).start().join(timeout=120)
    scored = SENT - BAD
    prom = prometheus
    events = 'sum(inferstream_events_total{job="inferstream",role="score",outcome="%s"})'
    assert wait_value(prom, events % "scored", scored) == scored
    assert wait_value(prom, events % "dead_lettered", BAD) == BAD
    reason = 'sum(inferstream_dead_letters_total{role="score",reason="invalid-feature"})'
    assert wait_value(prom, reason, BAD) == BAD
    for phase in ("broker", "batch", "inference", "publish", "total"):
        count = f'sum(inferstream_event_age_seconds_count{{role="score",phase="{phase}"}})'
        assert wait_value(prom, count, SENT) == SENT, phase  # counted after delivery
    assert wait_value(prom, 'sum(inferstream_batch_size_sum{role="score"})', SENT) == SENT
    assert wait_value(prom, 'sum(inferstream_tenant_events_total{role="score"})', scored) == scored
    drift_consumed = 'sum(inferstream_events_consumed_total{role="drift"})'
    assert wait_value(prom, drift_consumed, SENT) == SENT

    # lag drains to 0 and equals the broker's own count of the group
    lag = 'sum(inferstream_consumer_lag{role="score"})'
    assert wait_value(prom, lag, 0) == 0
    group = env["INFERSTREAM_APP_ID"]
    assert broker_lag(settings, f"{settings.topic_namespace}{group}",
                      fraud_topics(settings.topic_namespace).requests) == 0  # fmt: skip

    # the p99 of the histogram is in the bucket of the p99 measured here
    ages = measured_ages(settings, scored)
    own_p99 = float(np.quantile(ages, 0.99))
    # the raw buckets of the fresh worker, not increase(): a labelled series appears with its
    # first observation, so increase() drops what the first scrape saw, the warm-up's slow tail
    prom_p99 = scalar(
        prom,
        "histogram_quantile(0.99, sum by (le) ("
        'inferstream_event_age_seconds_bucket{role="score",phase="total"}))',
    )
    low, high = bucket_bounds(own_p99)
    assert prom_p99 is not None and low <= prom_p99 <= high, (own_p99, prom_p99)

    # every expression of the rules and the dashboard parses and returns a series
    wait_for(lambda: prom.query("stream:inferstream_event_age_seconds:p99_1m"), 30, 1)
    empty = [e for e in rule_and_panel_expressions() if not prom.query(e)]
    assert not empty, empty

    # /ui in headless chromium shows the figures
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=4000", "--dump-dom", f"{scorer.metrics_url}/ui"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    row = re.search(r'<tr data-stream="fraud">(.*?)</tr>', dom, re.S)
    assert row, dom[-3000:]
    p99_cell = re.search(r'class="p99">([\d.]+)<', row.group(1))
    assert p99_cell, row.group(1)  # event-age p99 in ms, from /metrics, computed by the page
    assert float(p99_cell.group(1)) > 0

    # inferstream top, once, from the worker's /metrics
    top = subprocess.run(
        [sys.executable, "-m", "pipeline", "top", "--once", "--interval", "1",
         "--url", scorer.metrics_url],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=env,
    )  # fmt: skip
    assert top.returncode == 0, top.stderr
    assert "fraud" in top.stdout and "p99" in top.stdout
    top = subprocess.run(
        [sys.executable, "-m", "pipeline", "top", "--once", "--prometheus", prom.url],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=env,
    )  # fmt: skip
    assert top.returncode == 0, top.stderr
    assert re.search(r"fraud\s+.\s+score", top.stdout) and re.search(
        r"fraud\s+.\s+drift", top.stdout
    ), top.stdout
    drift.stop()
    scorer.stop()


def test_a_restarted_worker_drops_up_and_returns_with_fresh_counters(
    env, settings, targets, prometheus, worker_factory
):
    env["INFERSTREAM_METRICS_PORT"] = str(free_port())
    worker = worker_factory("score")
    with RequestSender(settings) as sender:
        sender.send_many(TransactionGenerator(seed=152).generate(100).records)
    scored = 'sum(inferstream_events_total{outcome="scored"})'
    assert wait_value(prometheus, scored, 100) == 100
    worker.stop()
    up = 'max(up{job="inferstream"})'
    assert wait_value(prometheus, up, 0) == 0  # the file stays: same target, up drops to 0
    worker.start()
    assert wait_value(prometheus, up, 1) == 1
    with RequestSender(settings) as sender:
        sender.send_many(TransactionGenerator(seed=153).generate(50).records)
    assert wait_value(prometheus, scored, 50) == 50  # the counter restarted
    # Prometheus sees a counter reset (which rate() and increase() correct for), not a drop
    resets = scalar(prometheus, 'sum(resets(inferstream_events_total{outcome="scored"}[5m]))')
    assert resets is not None and resets >= 1
    worker.stop()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """One scrape of a real /metrics endpoint: (sample name, sorted labels) -> value."""
    body = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def test_provenance_costs_add_up_to_the_cost_counter(env, settings, worker_factory):
    scorer = worker_factory("score")
    records = TransactionGenerator(seed=155).generate(600).records
    for i, r in enumerate(records):
        r["tenant"] = f"tenant-{i % 4}"
    with RequestSender(settings) as sender:
        sender.send_many(records)
    provenance = values(read_all(settings, fraud_topics(settings.topic_namespace).provenance,
                                 expected=600))  # fmt: skip
    assert len(provenance) == 600
    counted = 'inferstream_events_total'
    assert wait_for(lambda: total(scrape(scorer.metrics_url), counted, outcome="scored") == 600,
                    30, 0.5)  # fmt: skip
    metrics = scrape(scorer.metrics_url)
    metered = sum(p["metered_cost_units"] for p in provenance)
    assert metered > 0 and all(p["cpu_seconds"] > 0 for p in provenance)
    assert total(metrics, "inferstream_cost_units_total", stream="fraud") == pytest.approx(
        metered, rel=1e-9
    )
    assert total(metrics, "inferstream_tenant_cost_units_total") == pytest.approx(metered, rel=1e-9)
    # CPU-seconds x the fraud model's manifest price (1 unit per CPU-us)
    cpu = sum(p["cpu_seconds"] for p in provenance)
    assert metered == pytest.approx(cpu * 1e6, rel=1e-9)
    # each batch's records share its model time: their CPU-seconds add up to the batch's
    by_batch: dict[str, list[dict]] = {}
    for p in provenance:
        by_batch.setdefault(p["batch_id"], []).append(p)
    for rows in by_batch.values():
        model_s = rows[0]["inference_ms"] / 1000 * settings.inference_threads
        assert sum(r["cpu_seconds"] for r in rows) == pytest.approx(model_s, rel=1e-9)
    scorer.stop()


def test_processes_list_their_targets_and_the_supervisor_counts_a_killed_child(
    env, settings, targets, prometheus
):
    worker = MetricsWorker(dict(env), "fraud", "--processes", "2").start(timeout=180)
    try:
        # two children and the supervisor, each its own file_sd target
        assert wait_for(lambda: len(list(targets.glob("*.json"))) == 3, 30)
        up = 'count(up{job="inferstream",role="score"} == 1)'
        assert wait_value(prometheus, up, 2) == 2
        with RequestSender(settings) as sender:
            sender.send_many(TransactionGenerator(seed=154).generate(400).records)
        scored = 'sum(inferstream_events_total{outcome="scored"})'
        assert wait_value(prometheus, scored, 400) == 400

        events = log_events(worker.lines)
        supervisor_url = next(
            e["metrics"] for e in events if e.get("event") == "supervisor-metrics"
        )
        children = {e["index"]: e["pid"] for e in events if e.get("event") == "process-ready"}
        restarts = "inferstream_worker_restarts_total"
        before = scrape(supervisor_url)
        assert total(before, restarts, stream="fraud", child="1") == 0  # there from the start
        os.kill(children[1], signal.SIGKILL)
        assert wait_for(
            lambda: total(scrape(supervisor_url), restarts, stream="fraud", child="1") == 1, 60
        ), worker.lines
        assert total(scrape(supervisor_url), restarts, stream="fraud", child="0") == 0
        # through Prometheus too, and the restart-loop alert's signal returns the series
        counted = f'sum({restarts}{{role="score-supervisor",stream="fraud",child="1"}})'
        assert wait_value(prometheus, counted, 1) == 1
        for expr in rule_and_panel_expressions(supervised=True):
            assert wait_for(lambda e=expr: bool(prometheus.query(e)), 30, 1), expr
        # the restarted child serves again, and is ready (stopped mid-start, a child can take
        # longer than a plain stop waits: its group is still rebalancing)
        def readied() -> int:
            events = log_events(worker.lines)
            return sum(e.get("event") == "process-ready" and e.get("index") == 1 for e in events)

        assert wait_for(lambda: readied() == 2, 120), list(worker.lines)[-10:]
        assert wait_value(prometheus, up, 2) == 2
    finally:
        worker.stop(timeout=150)  # the supervisor waits up to 120 s for its children
    left = lambda: {p.name: p.read_text() for p in targets.glob("*.json")}  # noqa: E731
    assert wait_for(lambda: not left(), 30), (left(), list(worker.lines)[-15:])  # each its own


@pytest.fixture
def worker_factory(env, settings):
    started: list[MetricsWorker] = []

    def start(role: str) -> MetricsWorker:
        w = MetricsWorker(dict(env))
        w.start_role(role)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


class MetricsWorker(WorkerProcess):
    """A worker whose `ready` line names its /metrics URL."""

    @property
    def metrics_url(self) -> str:
        for line in reversed(self.lines):
            if '"ready"' in line:
                url = json.loads(line).get("metrics")
                if url:
                    return url
        raise AssertionError("no metrics URL in the ready line")

    def start_role(self, role: str, timeout: float = 120) -> MetricsWorker:
        if role == "drift":
            return super().start_role("drift", timeout)  # type: ignore[return-value]
        return self.start(timeout)  # type: ignore[return-value]
