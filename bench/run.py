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
from bench.drift_run import run_drift_target
from bench.events import EventPool
from bench.measure import Plan, run_target
from bench.targets import ROLE_DOC, Target
from pipeline.config import REPO_ROOT, Settings
from pipeline.kafka.client_config import client_config

DRIFT_COMMIT_INTERVAL_S = 0.05


def plan_targets(
    slos: list[float],
    batch_sizes: list[int],
    processes: list[int],
    smoke: bool,
    reference: Target | None = None,
) -> list[Target]:
    """Reference first (its flat-out rate sets every config's offered rates), then baselines.

    Smoke: reference, floor, ceiling and the drift worker, on few events. Full: also per-event,
    `--processes N`, and the sweep over the engine's knobs (latency SLO at the reference
    batch_max, batch_max at the reference SLO).
    """
    ref = reference or Target("inferstream", "reference")
    floor = Target("passthrough", "floor", batch_max=ref.batch_max, window_ms=ref.window_ms)
    ceiling = Target("plain", "ceiling", batch_max=ref.batch_max, window_ms=ref.window_ms)
    # the drift group commits often: its commits are the bench's only view of its progress
    drift = replace(ref, kind="drift", role="drift", commit_interval_s=DRIFT_COMMIT_INTERVAL_S)
    if smoke:
        return [ref, floor, ceiling, drift]
    targets = [
        ref,
        floor,
        replace(ref, role="per-event", batch_max=1),
        ceiling,
        *(replace(ref, role="processes", processes=n) for n in processes if n > 1),
        drift,
    ]
    sweep = [replace(ref, role="sweep", latency_slo_ms=slo) for slo in slos]
    sweep += [replace(ref, role="sweep", batch_max=b) for b in batch_sizes]
    seen = {t.key for t in targets}
    for t in sweep:
        if t.key not in seen:
            seen.add(t.key)
            targets.append(t)
    return targets


def warm_up(settings: Any, log: Any = print) -> float:
    """One idempotent produce and one committed group read on a throwaway topic, so that the
    broker's coordinators (producer ids, __consumer_offsets) are loaded before the first config.
    Measured: a config run on a just-started broker met "Coordinator load in progress" and
    scored 8.7k ev/s against 18-21k for the same code later in that run."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    from pipeline.kafka.admin import create_topic

    started = time.monotonic()
    topic = f"bench-warmup-{int(started * 1000)}"
    create_topic(settings.kafka_bootstrap, topic, 1, 1)
    try:
        producer = Producer({**client_config(settings),
                             "enable.idempotence": True})  # fmt: skip
        for i in range(100):
            producer.produce(topic, b"warm-up", str(i).encode())
        if producer.flush(60):
            raise RuntimeError("warm-up records not delivered")
        consumer = Consumer({**client_config(settings),
                             "group.id": f"{topic}-group", "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})  # fmt: skip
        consumer.subscribe([topic])
        seen, deadline = 0, time.monotonic() + 60
        while seen < 100 and time.monotonic() < deadline:
            seen += sum(1 for m in consumer.consume(100, 0.5) if m.error() is None)
        consumer.commit(asynchronous=False)
        consumer.close()
    finally:
        admin = AdminClient(client_config(settings))
        for future in admin.delete_topics([topic]).values():
            future.result(30)
        for future in admin.delete_consumer_groups([f"{topic}-group"]).values():
            future.result(30)
    took = time.monotonic() - started
    log(f"[bench] broker warmed up in {took:.1f} s")
    return took


def run(plan: Plan, targets: list[Target], log: Any = print) -> dict[str, Any]:
    started = time.monotonic()
    warm_up(plan.settings, log)
    pool = EventPool(plan.settings)
    pool.events(0, plan.events)
    configs: list[dict[str, Any]] = []
    reference_rate: float | None = None
    rates: list[float] = []
    for index, target in enumerate(targets):
        log(f"[bench] {index + 1}/{len(targets)} {target.name} ({target.role})")
        measure = run_drift_target if target.kind == "drift" else run_target
        try:
            entry = measure(target, index, plan, pool, reference_rate)
        except Exception as exc:  # one broken config must not sink the run
            log(f"[bench]   failed: {exc!r}")
            entry = {"target": target.name, "error": repr(exc)}
        entry.update(name=target.name, **asdict(target))
        configs.append(entry)
        _log_entry(entry, log)
        if reference_rate is None and target.role == "reference":
            # every later config is offered the same absolute rates
            reference_rate = entry.get("flat", {}).get("events_per_s")
            rates = entry.get("rates", [])
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
        "reference_rate": reference_rate,
        "rates": rates,
        "configs": configs,
        "ratios": ratios,
        "targets": report.targets(configs, ratios),
    }


def _log_entry(entry: dict[str, Any], log: Any) -> None:
    flat = entry.get("flat", {})
    log(f"[bench]   flat: {flat.get('events_per_s')} ev/s, cpu/1k {flat.get('cpu_s_per_1k')}")
    for phase in entry.get("loads", []):
        if "skipped" in phase:
            log(f"[bench]   load {phase['load']}: skipped ({phase['skipped']})")
        elif "max_lag" in phase or entry.get("kind") == "drift":
            log(
                f"[bench]   load {phase.get('load')}: lag {phase.get('lag_start')} -> "
                f"{phase.get('lag_end')} (max {phase.get('max_lag')}, "
                f"{phase.get('lag_growth_per_s')}/s), sustained {phase.get('sustained')}"
            )
        else:
            log(
                f"[bench]   load {phase.get('load')}: p50 {phase.get('p50_ms')} ms, "
                f"p99 {phase.get('p99_ms')} ms {'(saturated)' if phase.get('saturated') else ''}"
            )


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
