"""`inferstream stack up|status|down` for real: a second Kafka + Redis on spare ports.

The session's own stack (the `stack` fixture, default ports) is never touched by the
lifecycle test: it runs on its own port pair and state dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT
from pipeline.stack import StackInfo
from pipeline.stack.process import pid_alive, port_open, read_pid
from tests.integration.helpers import port_free

pytestmark = pytest.mark.integration



def _spare_ports() -> tuple[int, int]:
    """A Kafka port whose successor (the controller port) is free too, and a Redis port."""
    kafka = next(p for p in range(19092, 19200, 2) if port_free(p) and port_free(p + 1))
    redis = next(p for p in range(16379, 16479) if port_free(p))
    return kafka, redis


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "stack", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env(state_dir: Path, bootstrap: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        INFERSTREAM_KAFKA_BOOTSTRAP=bootstrap,
        INFERSTREAM_REDIS_URL=redis_url,
        INFERSTREAM_STATE_DIR=str(state_dir),
    )  # INFERSTREAM_CACHE_DIR is inherited: the Kafka jars are shared, not fetched again
    return env


def test_up_twice_status_down(tmp_path: Path) -> None:
    kafka_port, redis_port = _spare_ports()
    bootstrap, redis_url = f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
    env = _env(tmp_path, bootstrap, redis_url)
    pid_files = [
        tmp_path / "stack" / f"kafka-{kafka_port}" / "kafka.pid",
        tmp_path / "stack" / f"redis-{redis_port}" / "redis.pid",
    ]
    try:
        first = _cli(env, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"Kafka bootstrap: {bootstrap}" in first.stdout
        assert f"kafka: up at {bootstrap}" in first.stdout
        assert f"redis: up at {redis_url}" in first.stdout
        records = [read_pid(path) for path in pid_files]
        pids = [record.pid for record in records if record]
        assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)

        second = _cli(env, "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count("already running") == 2, second.stdout
        assert [read_pid(path) for path in pid_files] == records  # nothing new started

        status = _cli(env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        expected = zip(("kafka", "redis"), (bootstrap, redis_url), pids, strict=True)
        for name, address, pid in expected:
            line = next(ln for ln in status.stdout.splitlines() if ln.startswith(name))
            assert address in line and " up " in line and f"pid {pid}" in line, line
    finally:
        down = _cli(env, "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "kafka: stopped" in down.stdout and "redis: stopped" in down.stdout
    assert not any(pid_alive(pid) for pid in pids)
    assert not any(path.exists() for path in pid_files)
    assert not port_open("127.0.0.1", kafka_port) and not port_open("127.0.0.1", redis_port)

    after = _cli(env, "status")
    assert after.returncode == 1
    assert after.stdout.count(" down") == 2, after.stdout


def test_servers_already_answering_are_used_and_left_alone(
    stack: StackInfo, tmp_path: Path
) -> None:
    """From another state dir, the session's servers are 'someone else's': used, never stopped."""
    env = _env(tmp_path, stack.bootstrap, stack.redis_url)
    up = _cli(env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.count("something else already answers") == 2, up.stdout
    assert not list(tmp_path.glob("stack/*/*.pid"))

    down = _cli(env, "down")
    assert down.returncode == 0
    assert down.stdout.count("not started by inferstream; left running") == 2, down.stdout
    status = _cli(env, "status")
    assert status.returncode == 0, status.stdout
