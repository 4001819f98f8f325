"""ensure_up / status / down decisions, with stand-in servers (`sleep`) instead of Kafka/Redis."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import pipeline.stack as stack
from pipeline.config import Settings
from pipeline.stack import process
from pipeline.stack.kafka import KafkaService
from pipeline.stack.redis import RedisService

SERVICE_CLASSES = (KafkaService, RedisService)


class FakeNet:
    """Which ports 'listen' and which of them answer like the real server would."""

    def __init__(self) -> None:
        self.listening: set[int] = set()
        self.answering: set[int] = set()
        self.launched: list[str] = []

    def port_open(self, host: str, port: int, timeout: float = 0.5) -> bool:
        return port in self.listening


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch) -> FakeNet:
    fake = FakeNet()
    monkeypatch.setattr(stack, "port_open", fake.port_open)
    for cls in SERVICE_CLASSES:
        monkeypatch.setattr(cls, "answers", lambda self, timeout=1.0: self.port in fake.answering)
        monkeypatch.setattr(cls, "prepare", lambda self, log: None)
    return fake


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    cfg = Settings(
        kafka_bootstrap="127.0.0.1:19092",
        redis_url="redis://127.0.0.1:16379/0",
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
    )
    yield cfg
    stack.down(cfg, log=lambda m: None, timeout=2)  # never leave a stand-in running


def _launch_sleep(net: FakeNet, *, answer: bool = True, argv: list[str] | None = None):
    def launch(self, log) -> int:  # type: ignore[no-untyped-def]
        pid = process.spawn(
            argv or ["sleep", "60"], log_path=self.log_file, pid_path=self.pid_file
        )
        net.launched.append(self.name)
        net.listening.add(self.port)
        if answer:
            net.answering.add(self.port)
        return pid

    return launch


def test_up_status_down(monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings) -> None:
    for cls in SERVICE_CLASSES:
        monkeypatch.setattr(cls, "launch", _launch_sleep(net))
    lines: list[str] = []
    info = stack.ensure_up(settings, log=lines.append)
    assert info == stack.StackInfo("127.0.0.1:19092", "redis://127.0.0.1:16379/0", info.started)
    assert sorted(info.started) == ["kafka", "redis"]

    again = stack.ensure_up(settings, log=lines.append)
    assert again.started == []
    assert sum("already running" in line for line in lines) == 2
    assert net.launched == ["kafka", "redis"]

    rows = {row.name: row for row in stack.status(settings)}
    assert all(row.up and row.local and row.managed for row in rows.values())
    pids = [row.pid for row in rows.values()]
    assert all(pid is not None and process.pid_alive(pid) for pid in pids)

    assert sorted(stack.down(settings, log=lines.append)) == ["kafka", "redis"]
    assert not any(process.pid_alive(pid) for pid in pids if pid)
    assert not list((settings.state_dir / "stack").glob("*/*.pid"))


def test_foreign_server_is_used_not_started_or_stopped(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings
) -> None:
    net.listening |= {19092, 16379}
    net.answering |= {19092, 16379}
    for cls in SERVICE_CLASSES:
        monkeypatch.setattr(cls, "launch", lambda self, log: pytest.fail("must not start"))
    lines: list[str] = []
    assert stack.ensure_up(settings, log=lines.append).started == []
    assert sum("something else already answers" in line for line in lines) == 2
    assert stack.down(settings, log=lines.append) == []
    assert sum("not started by inferstream" in line for line in lines) == 2
    rows = stack.status(settings)
    assert all(row.up and not row.managed for row in rows)


def test_port_taken_by_something_else(net: FakeNet, settings: Settings) -> None:
    net.listening.add(19092)  # listens, but does not answer as Kafka
    with pytest.raises(stack.StackError, match=r"port 19092 .* taken"):
        stack.ensure_up(settings, log=lambda m: None, services=["kafka"])


def test_remote_servers_are_only_checked(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, tmp_path: Path
) -> None:
    remote = Settings(
        kafka_bootstrap="10.20.30.40:9092",
        redis_url="redis://cache.internal:6379/0",
        state_dir=tmp_path,
    )
    for cls in SERVICE_CLASSES:
        monkeypatch.setattr(cls, "launch", lambda self, log: pytest.fail("must not start"))
    with pytest.raises(stack.StackError, match="not a loopback address"):
        stack.ensure_up(remote, log=lambda m: None, timeout=0.1)
    net.answering |= {9092, 6379}
    lines: list[str] = []
    assert stack.ensure_up(remote, log=lines.append).started == []
    assert all("external" in line for line in lines)
    rows = stack.status(remote)
    assert all(not row.local and row.pid is None for row in rows)


def test_server_that_dies_points_at_its_log(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings
) -> None:
    crash = ["sh", "-c", "echo 'FATAL: cannot bind'; exit 3"]
    monkeypatch.setattr(KafkaService, "launch", _launch_sleep(net, answer=False, argv=crash))
    with pytest.raises(stack.StackError) as err:
        stack.ensure_up(settings, log=lambda m: None, services=["kafka"])
    message = str(err.value)
    assert "exited before answering" in message
    assert "kafka.log" in message
    assert "FATAL: cannot bind" in message
    assert not KafkaService(settings).pid_file.exists()


def test_server_that_never_answers_times_out(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings
) -> None:
    monkeypatch.setattr(KafkaService, "launch", _launch_sleep(net, answer=False))
    with pytest.raises(stack.StackError, match=r"did not answer .* within .*kafka\.log"):
        stack.ensure_up(settings, log=lambda m: None, services=["kafka"], timeout=0.5)
    pid = process.live_pid(KafkaService(settings).pid_file)
    assert pid is not None  # still ours: `down` can stop it
    assert stack.down(settings, log=lambda m: None, services=["kafka"]) == ["kafka"]
    assert not process.pid_alive(pid)


def test_unknown_service(settings: Settings) -> None:
    with pytest.raises(stack.StackError, match="unknown"):
        stack.ensure_up(settings, services=["zookeeper"])


def _use_sleep_servers(monkeypatch: pytest.MonkeyPatch, net: FakeNet) -> None:
    for cls in SERVICE_CLASSES:
        monkeypatch.setattr(cls, "launch", _launch_sleep(net))


def _our_pids(settings: Settings) -> list[int]:
    return [row.pid for row in stack.status(settings) if row.pid is not None]


def test_last_session_out_stops_what_sessions_started(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings
) -> None:
    _use_sleep_servers(monkeypatch, net)
    quiet = lambda message: None  # noqa: E731
    first = stack.session(settings, log=quiet)
    info = first.__enter__()
    assert sorted(info.started) == ["kafka", "redis"]
    pids = _our_pids(settings)
    with stack.session(settings, log=quiet) as second:
        assert second.started == []
        first.__exit__(None, None, None)  # the first session ends while the second runs
        assert _our_pids(settings) == pids  # ... and leaves the servers to it
    assert _our_pids(settings) == []  # the last one out stopped them
    assert not any(process.pid_alive(pid) for pid in pids)
    assert not list((settings.state_dir / "stack" / "sessions").glob("*"))


def test_sessions_leave_servers_started_by_hand_running(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings
) -> None:
    _use_sleep_servers(monkeypatch, net)
    stack.ensure_up(settings, log=lambda m: None)  # `inferstream stack up`
    pids = _our_pids(settings)
    with stack.session(settings, log=lambda m: None) as info:
        assert info.started == []
    assert _our_pids(settings) == pids


def test_stack_up_by_hand_adopts_what_a_session_started(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings
) -> None:
    _use_sleep_servers(monkeypatch, net)
    with stack.session(settings, log=lambda m: None):
        pids = _our_pids(settings)
        stack.ensure_up(settings, log=lambda m: None)  # someone wants them kept
    assert _our_pids(settings) == pids


def test_keep_and_stale_leases(
    monkeypatch: pytest.MonkeyPatch, net: FakeNet, settings: Settings
) -> None:
    _use_sleep_servers(monkeypatch, net)
    sessions = settings.state_dir / "stack" / "sessions"
    dead = subprocess.Popen(["true"])
    dead.wait()
    sessions.mkdir(parents=True)
    (sessions / f"{dead.pid}-0.pid").write_text(f"{dead.pid}\n")  # crashed earlier run
    with stack.session(settings, log=lambda m: None, keep=True):
        pids = _our_pids(settings)
    assert _our_pids(settings) == pids  # kept
    with stack.session(settings, log=lambda m: None):
        pass
    assert _our_pids(settings) == pids  # kept means no later session stops them either
    assert not (sessions / f"{dead.pid}-0.pid").exists()
