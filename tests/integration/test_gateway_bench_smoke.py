"""The gateway benches run end to end against the real stack and report every figure.

Shapes and relations only, never a timing (numbers on shared machines drift). A bench that
wraps gateway internals breaks when they change; this is where that shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import REPO_ROOT

pytestmark = pytest.mark.integration


def _bench(stack: Any, tmp_path: Path, module: str, *args: str) -> dict[str, Any]:
    out = tmp_path / f"{module}.json"
    env = dict(os.environ, INFERSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
               INFERSTREAM_REDIS_URL=stack.redis_url,
               INFERSTREAM_STATE_DIR=str(tmp_path / "state"))  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args, "--json", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(out.read_text())


def test_gateway_rate_measures_single_list_and_paced_submits(stack, tmp_path) -> None:
    result = _bench(stack, tmp_path, "gateway_rate", "--requests", "300", "--list-size", "50",
                    "--paced-seconds", "1", "--no-e2e")  # fmt: skip
    assert result["gateway_single_accepted"] == 300
    assert result["gateway_list_accepted"] == 300  # every list of 50 admitted whole
    assert result["paced_accepted"] == result["paced_sent"] > 0
    for name in ("plain_request_producer_per_s", "gateway_single_per_s",
                 "gateway_list_records_per_s"):  # fmt: skip
        assert result[name] > 0, name
    assert result["ratio_list_to_plain"] == pytest.approx(
        result["gateway_list_records_per_s"] / result["plain_request_producer_per_s"], abs=0.01
    )
    for name in ("paced_p50_p99_ms", "paced_lists_p50_p99_ms"):
        p50, p99 = result[name]
        assert 0 < p50 <= p99, name
    assert result["paced_lists_accepted"] == result["paced_lists_sent"] > 0


def test_gateway_lag_probes_the_loop_and_the_broker(stack, tmp_path) -> None:
    result = _bench(stack, tmp_path, "gateway_lag", "--requests", "300", "--rate", "100",
                    "--paced-seconds", "1")  # fmt: skip
    assert result["closed_loop_per_s"] is None  # --rate: no closed-loop part
    assert result["paced_rate_per_s"] == 100
    p50, p99, most = result["broker_probe_ack_p50_p99_max_ms"]
    assert 0 < p50 <= p99 <= most
    assert 0 < result["machine_cpu_busy"] <= 1
