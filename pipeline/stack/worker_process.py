"""`inferstream worker` as a child process, with readiness taken from its structured log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque

from pipeline.config import REPO_ROOT
from pipeline.core.registry import DEFAULT_STREAM


class WorkerProcess:
    def __init__(
        self, env: dict[str, str] | None = None, streams: str = DEFAULT_STREAM, *extra: str
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.args = [sys.executable, "-m", "pipeline", "worker", "--streams", streams, *extra]
        self.proc: subprocess.Popen[str] | None = None
        self.lines: deque[str] = deque(maxlen=2000)  # its recent log lines, for error reports
        self._ready = threading.Event()

    def start_role(self, role: str, timeout: float = 120) -> WorkerProcess:
        """Start as another role's worker: "drift" runs `inferstream drift worker`."""
        if role == "drift":
            self.args = [*self.args[:3], "drift", "worker", *self.args[4:]]
        return self.start(timeout)

    def start(self, timeout: float = 90) -> WorkerProcess:
        self._ready.clear()
        self.proc = subprocess.Popen(
            self.args,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("worker did not become ready:\n" + "\n".join(self.lines))
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line.rstrip())
            try:
                if json.loads(line).get("event") == "ready":
                    self._ready.set()
            except (ValueError, AttributeError):
                pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if not self.running:
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
