"""`python -m bench --smoke` against the real broker: the harness runs and reports every field.

Asserts the shape of the results, never a timing: numbers on shared machines drift.
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
    assert set(roles) == {"reference", "floor", "per-event", "ceiling"}
    for role, config in roles.items():
        assert "error" not in config, (role, config.get("error"))
        assert set(config["flat"]) >= FLAT_FIELDS, role
        assert config["flat"]["completed"] == config["flat"]["events"], role
        assert config["duplicates"] >= 0
        for phase in config["loads"]:
            assert "skipped" in phase or set(phase) >= LOAD_FIELDS, (role, phase)
    # batch sizes come from provenance, so every config that scores has them
    for role in ("reference", "per-event", "ceiling"):
        assert roles[role]["batches"]["flat"]["batches"] >= 1
    assert roles["per-event"]["batches"]["flat"]["max"] == 1
    assert [p["load"] for p in roles["reference"]["loads"]] == result["plan"]["loads"]
    assert set(result["ratios"]) >= {"floor", "per-event", "ceiling"}
    assert set(result["ratios"]["floor"]) >= {"throughput", "cpu_per_event"}
    assert set(result["targets"]) == {"throughput_ge_70pct_of_floor",
                                      "p99_at_50pct_le_3x_window", "stretch_ge_50pct_of_ceiling"}
    assert "reference" in run.stdout and "ev/s" in run.stdout  # the table
