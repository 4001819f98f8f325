"""Pid files, process start/stop and address parsing, with real short-lived processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pipeline.stack import process
from pipeline.stack.process import PidRecord, StackError, fetch_once, run_maven


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("localhost", ("localhost", 7)),
        ("[::1]:19092", ("::1", 19092)),
        ("[::1]", ("::1", 7)),
        ("::1", ("::1", 7)),
        (" kafka.example.com:29092 ", ("kafka.example.com", 29092)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert process.parse_hostport(text, default_port=7) == expected


@pytest.mark.parametrize("text", ["host:abc", ":9092", "host:0", "host:70000"])
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(StackError):
        process.parse_hostport(text, default_port=7)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("10.0.0.5", False),
        ("kafka", False),
        ("0.0.0.0", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert process.is_loopback(host) is loopback


def test_pid_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.pid"
    record = process.write_pid(path, os.getpid())
    assert record.pid == os.getpid()
    assert process.read_pid(path) == record
    assert process.record_alive(record)
    assert process.live_pid(path) == os.getpid()


def test_missing_and_garbage_pid_files(tmp_path: Path) -> None:
    assert process.read_pid(tmp_path / "none.pid") is None
    garbage = tmp_path / "bad.pid"
    garbage.write_text("not a pid\n")
    assert process.read_pid(garbage) is None
    assert process.live_pid(garbage) is None
    assert not garbage.exists()


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "0"])
    proc.wait()
    path = tmp_path / "stale.pid"
    path.write_text(f"{proc.pid}\n")
    assert process.live_pid(path) is None
    assert not path.exists()


def test_reused_pid_is_not_ours(tmp_path: Path) -> None:
    """Same pid, different start time: some other process got the pid after ours died."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        ticks = process.process_start_ticks(proc.pid)
        assert ticks is not None, "start times come from /proc (Linux only, as the stack is)"
        assert process.record_alive(PidRecord(proc.pid, ticks))
        assert not process.record_alive(PidRecord(proc.pid, ticks - 1))
    finally:
        proc.kill()
        proc.wait()


def test_spawn_and_stop(tmp_path: Path) -> None:
    log, pid_path = tmp_path / "logs" / "s.log", tmp_path / "s.pid"
    pid = process.spawn(
        [sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(60)"],
        log_path=log,
        pid_path=pid_path,
    )
    assert process.live_pid(pid_path) == pid
    assert process.wait_for(lambda: "\nhello\n" in log.read_text(), 10)
    started = time.monotonic()
    assert process.stop(pid_path, timeout=10) == pid
    assert time.monotonic() - started < 5  # SIGTERM was enough
    assert not process.pid_alive(pid)
    assert not pid_path.exists()
    assert process.stop(pid_path) is None  # nothing left to stop


def test_spawned_process_has_its_own_session(tmp_path: Path) -> None:
    pid = process.spawn(["sleep", "30"], log_path=tmp_path / "l", pid_path=tmp_path / "p")
    try:
        assert os.getsid(pid) == pid != os.getsid(0)
    finally:
        process.stop(tmp_path / "p")


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    pid_path = tmp_path / "stubborn.pid"
    child = f"stubborn-{uuid.uuid4().hex}"  # a name to find the grandchild by
    pid = process.spawn(
        ["bash", "-c", f"trap '' TERM; (exec -a {child} sleep 60) & echo ready; wait"],
        log_path=tmp_path / "stubborn.log",
        pid_path=pid_path,
    )
    assert process.wait_for(lambda: "\nready\n" in (tmp_path / "stubborn.log").read_text(), 10)
    started = time.monotonic()
    assert process.stop(pid_path, timeout=0.5) == pid
    assert 0.5 <= time.monotonic() - started < 5  # SIGTERM was ignored, SIGKILL was not
    assert not process.pid_alive(pid)
    assert process.wait_for(lambda: child not in _all_cmdlines(), 5)


def _all_cmdlines() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_dead_child_counts_as_not_alive(tmp_path: Path) -> None:
    """A child of ours that exited is a zombie until reaped: pid_alive must say dead."""
    pid = process.spawn(["true"], log_path=tmp_path / "l", pid_path=tmp_path / "p")
    assert process.wait_for(lambda: not process.pid_alive(pid), 5)
    assert process.live_pid(tmp_path / "p") is None


def test_port_open() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert process.port_open("127.0.0.1", port)
    assert not process.port_open("127.0.0.1", port)


def test_log_tail(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.log_tail(path, 3) == "line 97\nline 98\nline 99"
    assert process.log_tail(tmp_path / "missing.log") == ""


def test_file_lock_serialises(tmp_path: Path) -> None:
    lock = tmp_path / "l.lock"
    order: list[str] = []

    def other() -> None:
        with process.file_lock(lock):
            order.append("other")

    with process.file_lock(lock):
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "other"]


def test_spawn_rotates_a_big_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("old\n" * 100)
    process.spawn(["true"], log_path=log, pid_path=tmp_path / "p", max_log_bytes=50)
    assert (tmp_path / "x.log.1").read_text().startswith("old\n")
    assert "old" not in log.read_text()


def test_fetch_once_fetches_once_and_again_after_a_failed_fetch(tmp_path: Path) -> None:
    home = tmp_path / "tool-1.0"
    calls: list[str] = []

    def failing() -> str:
        calls.append("failing")
        home.mkdir(parents=True, exist_ok=True)
        raise StackError("network down")

    def fetch() -> str:
        calls.append("fetch")
        home.mkdir(parents=True, exist_ok=True)
        return "1.0\n"

    with pytest.raises(StackError, match="network down"):
        fetch_once(home, failing)
    assert not (home / ".complete").exists()  # a failed fetch is not mistaken for a done one
    fetch_once(home, fetch)
    fetch_once(home, fetch)  # the marker says it is done: no second fetch
    assert calls == ["failing", "fetch"]
    assert (home / ".complete").read_text() == "1.0\n"


def test_run_maven_without_maven_is_one_line_with_the_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(StackError, match=r"^`mvn` \(Maven\) is needed once to fetch X\. try Y$"):
        run_maven(["dependency:copy"], "X", "try Y")
