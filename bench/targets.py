"""What the benchmark runs: inferstream's worker and the baselines, each as a subprocess."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Literal

from pipeline.worker_process import WorkerProcess

Kind = Literal["inferstream", "passthrough", "plain"]
Role = Literal["reference", "floor", "per-event", "ceiling", "sweep"]

ROLE_DOC = {
    "reference": "inferstream worker, default settings: what the ratios are about",
    "floor": "bare Faust pass-through (take_events, raw bytes out, no decode, no model)",
    "per-event": "inferstream worker with batch_max=1 (one model call per event)",
    "ceiling": "plain confluent-kafka loop around the same BatchScorer, no Faust",
    "sweep": "inferstream worker with other window / batch_max / transport",
}


@dataclass(frozen=True)
class Target:
    kind: Kind
    role: Role
    window_ms: float = 10.0
    batch_max: int = 256
    transport: str = "kafka"

    @property
    def name(self) -> str:
        transport = "" if self.transport == "kafka" else f" {self.transport}://"
        return f"{self.kind} w={self.window_ms:g}ms max={self.batch_max}{transport}"

    def backlog(self, events: int) -> int:
        """Flat-out backlog size: per-event scoring is slow, so it gets the first sixth."""
        return max(min(events, 2000), events // 6) if self.batch_max == 1 else events

    @property
    def has_provenance(self) -> bool:
        return self.kind != "passthrough"

    def command(self) -> list[str]:
        if self.kind == "inferstream":
            return [sys.executable, "-m", "pipeline", "worker", "--streams", "fraud", "--no-cache"]
        return [sys.executable, "-m", f"bench.{self.kind}"]

    def env(self, namespace: str, app_id: str, state_dir: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            INFERSTREAM_TOPIC_NAMESPACE=namespace,
            INFERSTREAM_APP_ID=app_id,
            INFERSTREAM_STATE_DIR=state_dir,
            INFERSTREAM_BATCH_MAX=str(self.batch_max),
            INFERSTREAM_BATCH_WINDOW_MS=str(self.window_ms),
            INFERSTREAM_FAUST_TRANSPORT=self.transport,
            INFERSTREAM_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        return env

    def process(self, env: dict[str, str]) -> WorkerProcess:
        process = WorkerProcess(env)
        process.args = self.command()
        return process


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # after "pid (comm)": state is field 3, utime field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
