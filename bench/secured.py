"""Secured against plaintext in the same run: `python -m bench.secured`.

The reference config (`python -m bench --only reference`) runs against the plain local stack
and against the secured one (`inferstream stack up --secure`: Kafka SASL_SSL + SCRAM, Redis
TLS + password), alternating A B B A ... so that drift in the machine's load falls on both
alike. Every Kafka client of the bench and of the worker takes its security settings from the
environment (pipeline/kafka/client_config.py), so the same bench code measures both. Reported:
flat-out events/s and CPU per 1,000 events of each run, the ratio secured / plaintext of each
pair and pooled (sum of events over sum of seconds), and the load average of each run. A short
run on each stack comes first and is not counted (warm-up).

    python -m bench.secured --events 30000 --pairs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.cli import positive_int
from pipeline.config import REPO_ROOT, Settings
from pipeline.stack import secure


def order(pairs: int) -> list[str]:
    """A B B A A B ...: each pair has one run of each, the first run alternating."""
    runs: list[str] = []
    for i in range(pairs):
        runs += ["plaintext", "secured"] if i % 2 == 0 else ["secured", "plaintext"]
    return runs


def pooled(runs: list[dict[str, Any]], kind: str) -> float:
    """Events over seconds across every run of `kind` (a rate, not a mean of rates)."""
    chosen = [r for r in runs if r["kind"] == kind]
    return sum(r["events"] for r in chosen) / sum(r["events"] / r["events_per_s"] for r in chosen)


def compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-pair and pooled ratios secured / plaintext of events/s and CPU per 1k events."""
    pairs = [runs[i : i + 2] for i in range(0, len(runs) - 1, 2)]
    per_pair = []
    for pair in pairs:
        by_kind = {r["kind"]: r for r in pair}
        per_pair.append({
            "throughput": round(
                by_kind["secured"]["events_per_s"] / by_kind["plaintext"]["events_per_s"], 3
            ),
            "cpu_per_1k": round(
                by_kind["secured"]["cpu_s_per_1k"] / by_kind["plaintext"]["cpu_s_per_1k"], 3
            ),
        })  # fmt: skip
    return {
        "pairs": per_pair,
        "throughput_pooled": round(pooled(runs, "secured") / pooled(runs, "plaintext"), 3),
    }


def _env(kind: str, stack: secure.SecureStack) -> dict[str, str]:
    """Plaintext: the stack the environment names (checked to be plaintext); secured: the
    same environment with the secured stack's client settings on top."""
    env = dict(os.environ)
    if kind == "secured":
        env.update(stack.client_env())
    return env


def _run_reference(kind: str, stack: secure.SecureStack, events: int, out: Path) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "bench", "--only", "reference", "--events", str(events),
        "--loads", "0.5", "--rate-seconds", "2", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=_env(kind, stack), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"bench.secured: the {kind} run failed (exit {done.returncode}):\n{tail}")
    (config,) = json.loads(out.read_text())["configs"]
    flat = config["flat"]
    return {
        "kind": kind,
        "events": flat["counted"],
        "events_per_s": flat["events_per_s"],
        "cpu_s_per_1k": flat["cpu_s_per_1k"],
        "loadavg_1m": config["loadavg_1m"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.secured", description=__doc__)
    parser.add_argument("--events", type=positive_int, default=30_000, help="backlog per run")
    parser.add_argument("--pairs", type=positive_int, default=2, help="plaintext+secured pairs")
    parser.add_argument("--out", default="", help="write the JSON here as well")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if settings.kafka_security_protocol != "PLAINTEXT" or settings.redis_url.startswith("rediss"):
        parser.error("the environment's stack must be the plaintext one (the baseline)")
    was_up = all(service.up for service in secure.status(settings))
    stack = secure.up(settings, _log)
    try:
        warmups, runs = _measure(stack, args.events, args.pairs)
    finally:
        if not was_up:  # started for this run: stopped after it
            secure.down(settings, _log)
    result = {"warmups": warmups, "runs": runs, **compare(runs)}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _measure(
    stack: secure.SecureStack, events: int, pairs: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-secured-") as tmp:
        # one short run on each stack first, not counted: a broker just started (the secured
        # one, usually) runs its TLS and request paths in the JIT's interpreter for a while
        warmups = [
            _run_reference(kind, stack, max(1000, events // 4), Path(tmp) / f"w{kind}.json")
            for kind in ("secured", "plaintext")
        ]
        for i, kind in enumerate(order(pairs)):
            run = _run_reference(kind, stack, events, Path(tmp) / f"{i}.json")
            print(json.dumps(run), file=sys.stderr, flush=True)
            runs.append(run)
    return warmups, runs


if __name__ == "__main__":
    sys.exit(main())
