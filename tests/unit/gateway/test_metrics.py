"""The gateway's metrics: its alert rules pass promtool and name only exported series,
tenant labels stay bounded, breaker state is read at scrape time."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import REPO_ROOT
from pipeline.core.breaker import CircuitBreaker
from pipeline.gateway.app import RedisBreakerView
from pipeline.metrics.gateway import GatewayMetrics

RULES = REPO_ROOT / "ops/prometheus/gateway_rules.yml"


class _Redis:
    degraded = False
    degraded_periods = 0


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_gateway_rules_pass_promtool_and_name_exported_series():
    binary = shutil.which("promtool")
    assert binary, "promtool missing: apt-get install prometheus"
    done = subprocess.run([binary, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = GatewayMetrics()
    breaker = CircuitBreaker("kafka", failures=1, reset_s=60)
    metrics.watch(_Redis(), lambda: {"kafka": breaker})
    metrics.answered("submit", 202, "acme")
    metrics.submit_seconds.labels("fraud").observe(0.003)
    exported = {name for name, _ in _samples(metrics)}
    rules = yaml.safe_load(RULES.read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for group in rules["groups"]:
        for rule in group["rules"]:
            for metric in re.findall(r"\b(inferstream_\w+|\w+:[\w:]+)", rule["expr"]):
                assert metric in exported or metric in recorded, (metric, rule["expr"])


def test_requests_limits_and_breakers_are_counted_with_bounded_tenants():
    metrics = GatewayMetrics(top_tenants=2)
    breaker = CircuitBreaker("kafka", failures=1, reset_s=60)
    redis = _Redis()
    metrics.watch(redis, lambda: {"kafka": breaker, "redis": RedisBreakerView(redis)})
    for tenant in ("acme", "globex", "initech", "acme", None):
        metrics.answered("submit", 202, tenant)
    metrics.limited.labels(metrics.tenant("acme"), "cost").inc()
    samples = _samples(metrics)

    def requests(tenant: str) -> float:
        labels = (("route", "submit"), ("status", "202"), ("tenant", tenant))
        return samples.get(("inferstream_gateway_requests_total", labels), 0.0)

    assert [requests(t) for t in ("acme", "globex", "other", "none")] == [2, 1, 1, 1]
    key = ("inferstream_gateway_limited_total", (("limit", "cost"), ("tenant", "acme")))
    assert samples[key] == 1
    state = "inferstream_gateway_breaker_open"
    assert samples[(state, (("dependency", "kafka"),))] == 0
    breaker.failed("timeout")  # one failure opens it (failures=1)
    redis.degraded, redis.degraded_periods = True, 1
    samples = _samples(metrics)
    assert samples[(state, (("dependency", "kafka"),))] == 1
    assert samples[(state, (("dependency", "redis"),))] == 1
    moves = "inferstream_gateway_breaker_transitions_total"
    assert samples[(moves, (("dependency", "kafka"), ("from", "closed"), ("to", "open")))] == 1

