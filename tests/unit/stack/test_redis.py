"""Redis URL parsing and redis-server discovery/installation decisions (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.stack import apt as stack_apt
from pipeline.stack import redis as stack_redis
from pipeline.stack.process import StackError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", ("127.0.0.1", 6379)),
        ("redis://localhost/1", ("localhost", 6379)),
        ("redis://:secret@127.0.0.1:16379/0", ("127.0.0.1", 16379)),
        ("redis://user:p%40ss@cache.internal:6380", ("cache.internal", 6380)),
        ("rediss://[::1]:6390/0", ("::1", 6390)),
    ],
)
def test_parse_redis_url(url: str, expected: tuple[str, int]) -> None:
    assert stack_redis.parse_redis_url(url) == expected


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "unix:///tmp/r.sock"])
def test_parse_redis_url_rejects(url: str) -> None:
    with pytest.raises(StackError, match="INFERSTREAM_REDIS_URL"):
        stack_redis.parse_redis_url(url)


def test_service_paths(tmp_path: Path) -> None:
    svc = stack_redis.RedisService(
        Settings(redis_url="redis://127.0.0.1:16379/0", state_dir=tmp_path)
    )
    assert svc.port == 16379
    assert svc.dir == tmp_path / "stack" / "redis-16379"
    assert svc.address == "redis://127.0.0.1:16379/0"


def test_installed_server_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_redis, "find_redis_server", lambda: "/opt/redis/bin/redis-server")
    monkeypatch.setattr(stack_redis, "_apt_prefix", lambda: pytest.fail("must not install"))
    assert stack_redis.ensure_redis_server(print) == "/opt/redis/bin/redis-server"


def test_missing_server_without_apt_rights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_redis, "find_redis_server", lambda: None)
    monkeypatch.setattr(stack_redis, "_apt_prefix", lambda: None)
    with pytest.raises(StackError) as err:
        stack_redis.ensure_redis_server(print)
    message = str(err.value)
    assert "redis-server" in message
    assert "docker compose" in message
    assert "INFERSTREAM_REDIS_URL" in message


def test_install_retries_after_apt_update(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    installed: list[bool] = []

    class Done:
        def __init__(self, rc: int) -> None:
            self.returncode, self.stdout, self.stderr = rc, "", "E: Unable to locate package"

    def fake_run(argv: list[str], **kwargs: object) -> Done:
        calls.append(argv)
        if argv[-1] == "redis-server" and "update" not in argv:
            ok = any("update" in c for c in calls)
            installed.append(ok)
            return Done(0 if ok else 100)
        return Done(0)

    monkeypatch.setattr(stack_redis, "_apt_prefix", lambda: [])
    server = "/usr/bin/redis-server"

    def find() -> str | None:
        return server if any(installed) else None

    monkeypatch.setattr(stack_redis, "find_redis_server", find)
    monkeypatch.setattr(stack_apt.subprocess, "run", fake_run)
    lines: list[str] = []
    assert stack_redis.ensure_redis_server(lines.append) == server
    assert [c[1] for c in calls] == ["install", "update", "install"]
    assert any("apt-get update" in line for line in lines)
