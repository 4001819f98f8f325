"""`python -m bench --smoke` against the real broker: every config runs and every field is there.

Asserts the shape of the results and how they relate (rates, ratios, targets), never a timing:
numbers on shared machines drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline.config import REPO_ROOT

pytestmark = pytest.mark.integration

FLAT_FIELDS = {"events", "completed", "complete", "events_per_s", "span_s", "cpu_s_per_1k"}
LOAD_FIELDS = {"load", "offered_per_s", "completed", "saturated", "p50_ms", "p95_ms", "p99_ms",
               "max_ms", "cpu_s_per_1k"}
LAG_FIELDS = {"load", "offered_per_s", "events", "complete", "committed_per_s", "lag_start",
              "lag_end", "max_lag", "lag_growth_per_s", "drain_s", "sustained", "cpu_s_per_1k"}
TARGETS = {"throughput_ge_90pct_of_ceiling", "throughput_ge_3.5x_floor",
           "cpu_per_event_le_115pct_of_ceiling", "p99_at_50pct_load_le_30ms",
           "p99_at_90pct_load_le_100ms", "drift_sustains_90pct_of_reference",
           "stretch_cpu_per_event_le_80pct_of_ceiling"}


def test_smoke_run_measures_every_baseline(stack, tmp_path):
    out = tmp_path / "smoke.json"
    env = dict(os.environ, INFERSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
               INFERSTREAM_STATE_DIR=str(tmp_path / "state"))
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(out.read_text())

    roles = {c["role"]: c for c in result["configs"]}
    assert set(roles) == {"reference", "floor", "ceiling", "drift"}
    assert roles["reference"]["name"].startswith("inferstream slo=")
    for role, config in roles.items():
        assert "error" not in config, (role, config.get("error"))
        assert set(config["flat"]) >= FLAT_FIELDS, role
        assert config["flat"]["complete"], role
        assert config["flat"]["completed"] == config["flat"]["events"], role
        assert config["flat"]["events_per_s"] > 0, role
    # nothing fails or rebalances in this run, so at-least-once delivers each result once
    for role in ("reference", "floor", "ceiling"):
        assert roles[role]["duplicates"] == 0, (role, roles[role]["duplicates"])
        for phase in roles[role]["loads"]:
            assert "skipped" in phase or set(phase) >= LOAD_FIELDS, (role, phase)
    # batch sizes come from provenance, so every config that scores has them
    for role in ("reference", "ceiling"):
        assert roles[role]["batches"]["flat"]["batches"] >= 1
    assert [p["load"] for p in roles["reference"]["loads"]] == result["plan"]["loads"]

    # every config is offered the same absolute rates: loads x the reference's flat-out rate
    reference_rate = result["reference_rate"]
    assert reference_rate == roles["reference"]["flat"]["events_per_s"]
    drift = roles["drift"]
    assert 0.9 in [p["load"] for p in drift["loads"]]  # the drift target's load, always run
    for phase in drift["loads"]:
        assert set(phase) >= LAG_FIELDS, phase
        assert phase["offered_per_s"] == pytest.approx(reference_rate * phase["load"], abs=0.1)
        assert phase["complete"], phase  # the worker caught up with every offered event
        assert phase["max_lag"] >= phase["lag_start"] >= 0

    for role in ("floor", "ceiling"):
        ratio = result["ratios"][role]
        assert ratio["throughput"] > 0 and ratio["cpu_per_event"] > 0, (role, ratio)
    assert set(result["targets"]) == TARGETS
    for name, check in result["targets"].items():
        assert set(check) == {"target", "measured", "bound", "ok"}, name
    for name in ("throughput_ge_90pct_of_ceiling", "throughput_ge_3.5x_floor",
                 "cpu_per_event_le_115pct_of_ceiling", "drift_sustains_90pct_of_reference"):
        assert result["targets"][name]["measured"] is not None, name
        assert isinstance(result["targets"][name]["ok"], bool), name
    assert result["targets"]["throughput_ge_3.5x_floor"]["measured"] == (
        result["ratios"]["floor"]["throughput"]
    )
    assert "reference" in run.stdout and "ev/s" in run.stdout and "target" in run.stdout
