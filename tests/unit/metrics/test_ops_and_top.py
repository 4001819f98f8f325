"""ops/: rules and config checked by promtool, every metric a rule or a panel names is one the
worker exports; `inferstream top`'s arithmetic (histogram quantiles, rates between reads)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import yaml

from pipeline.cli.top_cmd import Totals, parse, quantile, rows_between
from pipeline.config import REPO_ROOT
from pipeline.metrics.families import HELP, PREFIX
from pipeline.stack.prometheus import RULE_FILES, config_text

OPS = REPO_ROOT / "ops"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: apt-get install prometheus"
    return subprocess.run([binary, *args], capture_output=True, text=True)


def expressions() -> list[str]:
    rules = yaml.safe_load((OPS / "prometheus/rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((OPS / "grafana/dashboards/inferstream.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs


def test_rules_pass_promtool():
    done = promtool("check", "rules", str(OPS / "prometheus/rules.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_generated_config_passes_promtool(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(config_text(tmp_path / "targets", RULE_FILES))
    done = promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gateway_rules.yml" in config.read_text()  # the local stack evaluates both rule files


def test_every_metric_named_by_a_rule_or_panel_is_exported_or_recorded():
    rules = yaml.safe_load((OPS / "prometheus/rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    exported = set()
    for short in HELP:
        base = f"{PREFIX}_{short}"
        exported |= {base, f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    exported |= {"up", "process_start_time_seconds", f"{PREFIX}_engine_paused"}
    names = re.compile(r"\b(inferstream_\w+|stream\w*:[\w:]+|up(?=\{)|process_\w+)")
    for expr in expressions():
        for metric in names.findall(expr):
            assert metric in exported or metric in recorded, (metric, expr)


def test_the_dashboard_panels_have_unique_ids_and_a_query_each():
    dashboard = json.loads((OPS / "grafana/dashboards/inferstream.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] for p in dashboard["panels"])


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = {0.01: 50.0, 0.02: 90.0, 0.05: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == 0.01
    assert abs(quantile(0.7, buckets) - 0.015) < 1e-12
    assert abs(quantile(0.95, buckets) - 0.035) < 1e-12
    assert quantile(0.5, {float("inf"): 0.0}) is None


TEXT = """# TYPE inferstream_events_consumed_total counter
inferstream_events_consumed_total{stream="fraud"} %d
# TYPE inferstream_events_total counter
inferstream_events_total{outcome="scored",stream="fraud"} %d
inferstream_events_total{outcome="dead_lettered",stream="fraud"} 2
# TYPE inferstream_cost_units_total counter
inferstream_cost_units_total{model="m",provider="p",stream="fraud",version="1"} %f
# TYPE inferstream_event_age_seconds histogram
inferstream_event_age_seconds_bucket{le="0.01",phase="total",stream="fraud"} %d
inferstream_event_age_seconds_bucket{le="+Inf",phase="total",stream="fraud"} %d
inferstream_event_age_seconds_count{phase="total",stream="fraud"} %d
inferstream_event_age_seconds_sum{phase="total",stream="fraud"} 1
"""


def test_top_rates_and_quantiles_come_from_the_difference_of_two_reads():
    before: dict = {}
    after: dict = {}
    parse(TEXT % (100, 98, 0.5, 100, 100, 100), "score", before)
    parse(TEXT % (300, 298, 1.5, 100, 300, 300), "score", after)
    (row,) = rows_between(before, after, 2.0)
    assert row["in_s"] == 100 and row["out_s"] == 100
    assert abs(row["cost"] - 1.0 / 200) < 1e-12
    assert row["p99"] == 0.01  # every new event is above 10 ms: the +Inf bucket's lower bound
    assert isinstance(after[("score", "fraud")], Totals)
