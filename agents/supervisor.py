"""`inferstream worker --processes N`: N engine processes in one consumer group, one supervisor.

Each child is a plain `inferstream worker` (the same command without `--processes`), so Kafka
spreads the partitions over them. A child that dies is restarted (after a pause that grows
while it keeps dying young); SIGTERM or SIGINT is passed to every child, which delivers and
commits its in-flight batches before it exits, and the supervisor waits for all of them.
The children's log lines pass through; their `ready` lines become `process-ready`, and the
supervisor says `ready` itself once every child is. With metrics on, the supervisor serves
`inferstream_worker_restarts_total{stream,child}` itself (pipeline/metrics/supervisor.py):
the children's own counters restart with them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from pipeline.logs import lifecycle_event

STOP_TIMEOUT_S = 120.0


class Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        role: str = "score",
        streams: Sequence[str] = (),
        settings: Any = None,  # Settings: with metrics on, the supervisor serves its own
    ) -> None:
        if processes < 1:
            raise ValueError(f"--processes must be at least 1, got {processes}")
        self.command = list(command)
        self.processes = processes
        self.metrics: Any = None
        if settings is not None and settings.metrics != "off":
            from pipeline.metrics.supervisor import SupervisorMetrics

            self.metrics = SupervisorMetrics(settings, role, streams, processes)
        self._children: list[subprocess.Popen[str] | None] = [None] * processes
        self._ready: set[int] = set()
        self._announced = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        metrics_url = self.metrics.serve() if self.metrics is not None else None
        if metrics_url:
            lifecycle_event("supervisor-metrics", "supervisor /metrics", metrics=metrics_url)
        for index in range(self.processes):
            self._spawn(index)
        failures = [0] * self.processes
        started = [time.monotonic()] * self.processes
        while not self._stopping.is_set():
            for index, child in enumerate(self._children):
                if child is None or child.poll() is None:
                    continue
                if self._stopping.is_set():
                    break
                lived = time.monotonic() - started[index]
                failures[index] = failures[index] + 1 if lived < 30 else 1
                delay = min(30.0, 0.5 * 2 ** (failures[index] - 1))
                lifecycle_event(
                    "process-exited",
                    "worker process exited; restarting it",
                    index=index,
                    pid=child.pid,
                    code=child.returncode,
                    restart_in_s=delay,
                )
                with self._lock:
                    self._ready.discard(index)
                if self._stopping.wait(delay):
                    break
                self._spawn(index)
                started[index] = time.monotonic()
                if self.metrics is not None:
                    self.metrics.restarted(index)
            self._stopping.wait(0.2)
        if self.metrics is not None:
            self.metrics.unlist()
        try:
            return self._stop_all()
        finally:
            if self.metrics is not None:
                self.metrics.close()

    def _spawn(self, index: int) -> None:
        env = dict(os.environ)
        instance = env.get("INFERSTREAM_GROUP_INSTANCE_ID")
        if instance:  # static membership: the restarted child takes its slot's partitions back
            env["INFERSTREAM_GROUP_INSTANCE_ID"] = f"{instance}-{index}"
        child = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self._children[index] = child
        threading.Thread(target=self._pump, args=(index, child), daemon=True).start()

    def _pump(self, index: int, child: subprocess.Popen[str]) -> None:
        assert child.stderr is not None
        for line in child.stderr:
            ready = False
            if '"ready"' in line:
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = None
                if isinstance(entry, dict) and entry.get("event") == "ready":
                    entry.update(event="process-ready", index=index, pid=child.pid)
                    line = json.dumps(entry) + "\n"
                    ready = True
            sys.stderr.write(line)
            sys.stderr.flush()
            if ready:  # after its line: "all ready" never comes before a child's process-ready
                self._child_ready(index)

    def _child_ready(self, index: int) -> None:
        with self._lock:
            self._ready.add(index)
            if self._announced or len(self._ready) < self.processes:
                return
            self._announced = True
        lifecycle_event("ready", "all worker processes ready", processes=self.processes)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping.set()

    def _stop_all(self) -> int:
        children = [c for c in self._children if c is not None and c.poll() is None]
        for child in children:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        worst = 0
        for child in children:
            try:
                code = child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
            worst = worst or code
        lifecycle_event("stopped", "worker processes stopped", processes=self.processes)
        return worst
