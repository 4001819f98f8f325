"""`python -m bench.docs_rate` with tiny sizes against the suite's broker: every part runs and
the report has its fields, consistent counts and ratios, never a timing bound (numbers on shared
machines drift). Bad flags are one line and exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT

pytestmark = pytest.mark.integration

TINY = ["--docs", "40", "--batching-docs", "30", "--long-share", "0.1", "--long-chars", "600",
        "--fraud-rate", "200", "--fraud-seconds", "1", "--fraud-docs", "120"]  # fmt: skip
PIPELINE_FIELDS = {"docs", "completed", "complete", "docs_per_s", "counted", "span_s", "wall_s",
                   "wall_docs_per_s", "total_s", "startup_s", "produce_s",
                   "duplicates"}  # fmt: skip
BARE_FIELDS = {"docs", "windows", "rows", "model_calls", "docs_per_s", "wall_s"}
STRATEGY_FIELDS = {"model_calls", "padded_tokens", "real_tokens", "padding_share", "model_s",
                   "docs_per_s", "max_abs_diff_vs_by_length"}  # fmt: skip
PHASE_FIELDS = {"phase", "offered_per_s", "events", "completed", "complete", "saturated",
                "p50_ms", "p95_ms", "p99_ms", "max_ms"}  # fmt: skip
TARGETS = {"docs_pipeline_ge_90pct_of_bare_loop", "by_length_ge_1.5x_fifo",
           "fraud_p99_with_docs_le_2x_alone"}  # fmt: skip


def _env(stack, tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, INFERSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
                INFERSTREAM_REDIS_URL=stack.redis_url,
                INFERSTREAM_STATE_DIR=str(tmp_path / "state"))  # fmt: skip


def test_docs_bench_measures_every_part(stack, tmp_path: Path) -> None:
    out = tmp_path / "docs.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.docs_rate", *TINY, "--out", str(out)],
        cwd=REPO_ROOT, env=_env(stack, tmp_path), capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["plan"]["parts"] == ["bare", "pipeline", "batching", "fraud"]
    assert result["corpus"]["docs"] == 40

    bare = result["bare"]
    assert set(bare) >= BARE_FIELDS
    assert bare["docs"] == 40 and bare["docs_per_s"] > 0
    assert bare["windows"] >= 1 and bare["model_calls"] >= bare["windows"]
    assert bare["rows"] >= bare["docs"]  # a chunked document is several rows

    pipeline = result["pipeline"]
    assert set(pipeline) >= PIPELINE_FIELDS
    assert pipeline["complete"] and pipeline["completed"] == 40
    assert pipeline["duplicates"] == 0
    assert pipeline["wall_docs_per_s"] > 0
    assert pipeline["total_s"] >= pipeline["wall_s"] > 0

    batching = result["batching"]
    assert set(batching) == {"by_length", "fifo_32"}
    for name, entry in batching.items():
        assert set(entry) >= STRATEGY_FIELDS, name
        assert entry["docs_per_s"] > 0 and entry["padded_tokens"] >= entry["real_tokens"], name
        # padding is masked: every strategy gives the same embeddings (int8 rounding aside)
        assert entry["max_abs_diff_vs_by_length"] < 0.05, name
    assert batching["by_length"]["max_abs_diff_vs_by_length"] == 0
    assert batching["by_length"]["real_tokens"] == batching["fifo_32"]["real_tokens"]

    fraud = result["fraud"]
    for phase in ("alone", "with_docs", "alone_after"):
        assert set(fraud[phase]) >= PHASE_FIELDS, phase
        assert fraud[phase]["completed"] == fraud[phase]["events"] == 200, phase
        assert fraud[phase]["p99_ms"] >= fraud[phase]["p50_ms"] > 0, phase
    assert fraud["with_docs"]["docs_worker_cores"] >= 0

    ratios = result["ratios"]
    assert ratios["by_length_vs_fifo"] == pytest.approx(
        batching["by_length"]["docs_per_s"] / batching["fifo_32"]["docs_per_s"], rel=0.01
    )
    assert ratios["fraud_p99_with_docs_vs_alone"] == pytest.approx(
        fraud["with_docs"]["p99_ms"] / fraud["alone"]["p99_ms"], rel=0.01
    )
    assert set(result["targets"]) == TARGETS
    for name, check in result["targets"].items():
        assert set(check) == {"target", "measured", "bound", "ok"}, name
    for name in ("by_length_ge_1.5x_fifo", "fraud_p99_with_docs_le_2x_alone"):
        assert isinstance(result["targets"][name]["ok"], bool), name
    # the pipeline's steady rate needs two batches, which 40 documents may not give
    pipe_ratio = result["targets"]["docs_pipeline_ge_90pct_of_bare_loop"]
    assert pipe_ratio["measured"] == ratios["pipeline_vs_bare"]
    assert "bare loop" in run.stdout and "docs/s" in run.stdout and "targets" in run.stdout
    assert "[docs-bench]" in run.stderr


@pytest.mark.parametrize(
    "flags",
    [["--docs", "0"], ["--long-share", "1.5"], ["--only", "bare,nope"], ["--fraud-rate", "-1"]],
)
def test_docs_bench_bad_flag_is_one_line(flags: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.docs_rate", *flags],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith("python -m bench.docs_rate: error:")
