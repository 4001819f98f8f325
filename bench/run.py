"""The run: plan the configurations, measure each on the same events, compute the ratios."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, replace
from importlib import metadata
from typing import Any

from bench import report
from bench.events import EventPool
from bench.measure import Plan, run_target
from bench.targets import ROLE_DOC, Target
from pipeline.config import REPO_ROOT, Settings


def plan_targets(
    windows: list[float],
    batch_sizes: list[int],
    transports: list[str],
    smoke: bool,
    reference: Target | None = None,
) -> list[Target]:
    ref = reference or Target("inferstream", "reference")
    targets = [
        ref,
        Target("passthrough", "floor", ref.window_ms, ref.batch_max),
        Target("inferstream", "per-event", ref.window_ms, 1),
        Target("plain", "ceiling", ref.window_ms, ref.batch_max),
    ]
    if smoke:
        return targets
    sweep = [Target("inferstream", "sweep", w, ref.batch_max) for w in windows]
    sweep += [Target("inferstream", "sweep", ref.window_ms, b) for b in batch_sizes]
    for transport in transports:
        if transport != ref.transport:
            sweep.append(Target("inferstream", "sweep", ref.window_ms, ref.batch_max, transport))
            sweep.append(Target("passthrough", "sweep", ref.window_ms, ref.batch_max, transport))
    seen = {(t.kind, t.window_ms, t.batch_max, t.transport) for t in targets}
    for t in sweep:
        if (t.kind, t.window_ms, t.batch_max, t.transport) not in seen:
            seen.add((t.kind, t.window_ms, t.batch_max, t.transport))
            targets.append(t)
    return targets


def run(plan: Plan, targets: list[Target], log: Any = print) -> dict[str, Any]:
    started = time.monotonic()
    pool = EventPool(plan.settings)
    pool.events(0, plan.events)
    configs: list[dict[str, Any]] = []
    rates: list[float] | None = None
    for index, target in enumerate(targets):
        log(f"[bench] {index + 1}/{len(targets)} {target.name} ({target.role})")
        try:
            entry = run_target(target, index, plan, pool, rates)
        except Exception as exc:  # one broken config (e.g. a transport) must not sink the run
            log(f"[bench]   failed: {exc!r}")
            entry = {"target": target.name, "error": repr(exc)}
        entry.update(name=target.name, **asdict(target))
        configs.append(entry)
        flat = entry.get("flat", {})
        log(f"[bench]   flat: {flat.get('events_per_s')} ev/s, cpu/1k {flat.get('cpu_s_per_1k')}")
        for phase in entry.get("loads", []):
            if "skipped" in phase:
                log(f"[bench]   load {phase['load']}: skipped ({phase['skipped']})")
                continue
            log(
                f"[bench]   load {phase.get('load')}: p50 {phase.get('p50_ms')} ms, "
                f"p99 {phase.get('p99_ms')} ms {'(saturated)' if phase.get('saturated') else ''}"
            )
        if rates is None and target.role == "reference":
            rates = entry.get("rates")  # every later config is offered the same rates
    ratios = report.ratios(configs, plan.loads)
    return {
        "meta": _meta(started),
        "plan": {
            "events": plan.events,
            "rate_seconds": plan.rate_seconds,
            "loads": list(plan.loads),
            "run_id": plan.run_id,
        },
        "roles": ROLE_DOC,
        "rates": rates or [],
        "configs": configs,
        "ratios": ratios,
        "targets": report.targets(configs, ratios),
    }


def _meta(started: float) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", "agents", "pipeline"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except OSError:
        rev, dirty = "", False
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": round(time.monotonic() - started, 1),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "git": f"{rev}{'-dirty' if dirty else ''}",
        "packages": {
            n: version(n)
            for n in ("faust-streaming", "aiokafka", "confluent-kafka", "fastavro", "onnxruntime")
        },
    }


def new_plan(
    settings: Settings, events: int, rate_seconds: float, loads: list[float], keep: bool
) -> Plan:
    run_id = time.strftime("%m%d%H%M%S") + uuid.uuid4().hex[:4]
    return Plan(replace(settings), run_id, events, rate_seconds, tuple(loads), keep)
