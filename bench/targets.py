"""What the benchmark runs: inferstream's workers and the baselines, each as a subprocess."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from bench.window import DEFAULT_MS
from bench.window import ENV as WINDOW_ENV
from pipeline.stack.worker_process import WorkerProcess

Kind = Literal["inferstream", "passthrough", "plain", "drift"]
Role = Literal["reference", "floor", "per-event", "ceiling", "processes", "drift", "sweep"]

DRIFT_MIN_BACKLOG = 30_000  # the full run's backlog: ~1 s of drift at ~30k events/s

ROLE_DOC = {
    "reference": "inferstream worker (the engine), default settings: what the ratios are about",
    "floor": "bare Faust pass-through (take_events, raw bytes out, no decode, no model)",
    "per-event": "inferstream worker with batch_max=1 (one model call per event)",
    "ceiling": "plain confluent-kafka loop around the same BatchScorer, no Faust",
    "processes": "inferstream worker --processes 2 (supervisor + 2 engine processes, one group)",
    "drift": "inferstream drift worker: throughput and lag from its group's committed offsets",
    "sweep": "inferstream worker with another latency SLO or batch_max",
}


@dataclass(frozen=True)
class Target:
    kind: Kind
    role: Role
    latency_slo_ms: float = 25.0  # the engine's event-age objective (inferstream, drift)
    batch_max: int = 256
    window_ms: float = DEFAULT_MS  # the baselines' batching window (passthrough, plain)
    processes: int = 1
    commit_interval_s: float | None = None  # None: the worker's default

    @property
    def name(self) -> str:
        if self.kind in ("passthrough", "plain"):
            return f"{self.kind} w={self.window_ms:g}ms max={self.batch_max}"
        name = f"{self.kind} slo={self.latency_slo_ms:g}ms max={self.batch_max}"
        if self.processes > 1:
            name += f" procs={self.processes}"
        if self.commit_interval_s is not None:
            name += f" commit={self.commit_interval_s:g}s"
        return name

    @property
    def key(self) -> tuple[object, ...]:
        """What makes two targets the same measurement (a sweep point equal to the reference)."""
        return (self.kind, self.latency_slo_ms, self.batch_max, self.window_ms, self.processes)

    def backlog(self, events: int) -> int:
        """Flat-out backlog: the first `events`, with two exceptions.

        Per-event scoring is slow, so it gets the first sixth. The drift worker's progress is
        only seen through its commits (bench/drift_run.py), and a smoke backlog it drains in two
        or three commit intervals would give no rate: it gets at least DRIFT_MIN_BACKLOG.
        """
        if self.batch_max == 1:
            return max(min(events, 2000), events // 6)
        if self.kind == "drift":
            return max(events, DRIFT_MIN_BACKLOG)
        return events

    @property
    def has_provenance(self) -> bool:
        return self.kind in ("inferstream", "plain")

    def command(self) -> list[str]:
        processes = ["--processes", str(self.processes)] if self.processes > 1 else []
        if self.kind == "inferstream":
            # no cache: the same events in every config would be cache hits from the second on
            return [
                *(sys.executable, "-m", "pipeline", "worker", "--streams", "fraud", "--no-cache"),
                *processes,
            ]
        if self.kind == "drift":
            return [
                *(sys.executable, "-m", "pipeline", "drift", "worker", "--streams", "fraud"),
                *processes,
            ]
        return [sys.executable, "-m", f"bench.{self.kind}"]

    def env(self, namespace: str, app_id: str, state_dir: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            INFERSTREAM_TOPIC_NAMESPACE=namespace,
            INFERSTREAM_APP_ID=app_id,
            INFERSTREAM_STATE_DIR=state_dir,
            INFERSTREAM_BATCH_MAX=str(self.batch_max),
            INFERSTREAM_LATENCY_SLO_MS=str(self.latency_slo_ms),
            INFERSTREAM_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env[WINDOW_ENV] = str(self.window_ms)
        if self.commit_interval_s is not None:
            env["INFERSTREAM_COMMIT_INTERVAL_S"] = str(self.commit_interval_s)
        return env

    def process(self, env: dict[str, str]) -> WorkerProcess:
        process = WorkerProcess(env)
        process.args = self.command()
        return process


def _stat_fields(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        # after "pid (comm)" (comm may hold spaces and parentheses): fields from state (3) on
        return f.read().rsplit(b")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (a supervisor and its engine processes)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])  # field 4
        except (OSError, IndexError, ValueError):  # gone between the listing and the read
            continue
        children[ppid].append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants, all threads.

    Sums utime, stime (fields 14, 15) and cutime, cstime (16, 17) of every live process of
    the tree: a child that exits and is reaped moves its CPU into its parent's cutime/cstime,
    so a restarted engine process does not make the total go down.
    """
    clock = os.sysconf("SC_CLK_TCK")
    fields = _stat_fields(pid)  # the root must exist: a dead worker is an error here
    ticks = sum(int(v) for v in fields[11:15])
    for child in process_tree(pid)[1:]:
        try:
            ticks += sum(int(v) for v in _stat_fields(child)[11:15])
        except (OSError, ValueError):
            continue
    return ticks / clock
