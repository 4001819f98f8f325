"""A Redis server on loopback, from the `redis-server` on PATH (apt-installed when root)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config import Settings
from pipeline.stack.apt import apt_install
from pipeline.stack.apt import apt_prefix as _apt_prefix
from pipeline.stack.process import StackError, parse_hostport, spawn

Log = Callable[[str], None]

NO_REDIS_HINT = (
    "Install it (Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: "
    "`brew install redis`), run `docker compose up -d redis`, or point "
    "INFERSTREAM_REDIS_URL at a Redis server you already run."
)


def parse_redis_url(url: str) -> tuple[str, int]:
    """(host, port) of a redis:// or rediss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise StackError(f"INFERSTREAM_REDIS_URL={url!r}: expected redis://host:port/db")
    netloc = parts.netloc.rsplit("@", 1)[-1]  # drop user:password@
    return parse_hostport(netloc or "127.0.0.1", default_port=6379)


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)),
        None,
    )


def ensure_redis_server(log: Log) -> str:
    """Path of `redis-server`, installed with apt-get when missing and we may do so."""
    found = find_redis_server()
    if found:
        return found
    prefix = _apt_prefix()
    if prefix is None:
        raise StackError(f"`redis-server` is not installed. {NO_REDIS_HINT}")
    result = apt_install(prefix, "redis-server", log)
    found = find_redis_server()
    if result.returncode != 0 or not found:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise StackError(f"installing redis-server failed:\n{tail}\n{NO_REDIS_HINT}")
    log(f"installed {found}")
    return found


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """A Redis server at `url` answers PING within `timeout` s."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisService:
    """The Redis server `inferstream stack up` runs for `settings.redis_url`."""

    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.redis_url
        self.host, self.port = parse_redis_url(self.url)
        self.dir: Path = settings.state_dir / "stack" / f"redis-{self.port}"
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"
        self.data_dir = self.dir / "data"

    @property
    def address(self) -> str:
        return self.url

    def answers(self, timeout: float = 2.0) -> bool:
        return redis_answers(self.url, timeout)

    def prepare(self, log: Log) -> None:
        self._server = ensure_redis_server(log)

    def launch(self, log: Log) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            self._server, "--bind", "127.0.0.1", "--port", str(self.port),
            "--save", "", "--appendonly", "no", "--dir", str(self.data_dir),
            "--daemonize", "no", "--logfile", "",
        ]  # fmt: skip
        return spawn(argv, log_path=self.log_file, pid_path=self.pid_file, cwd=self.dir)
