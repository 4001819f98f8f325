"""The local stack without Docker: a single-node Kafka (KRaft) and a Redis server on loopback.

    info = ensure_up(settings)      # start what is not running; idempotent
    status(settings)                # one ServiceStatus per service
    down(settings)                  # stop only what we started (pid files)
    with session(settings) as info: # up for a block; the last session out stops
        ...                         #   what sessions started (test suites, demos)

The Schema Registry (pipeline/stack/registry.py, Apicurio) is a third service, started only
when asked for (`services=(..., "registry")`, `stack up --registry`) or when
INFERSTREAM_SCHEMA_REGISTRY_URL is set; Kafka and Redis are the default.

Servers for non-loopback addresses (INFERSTREAM_KAFKA_BOOTSTRAP / INFERSTREAM_REDIS_URL /
INFERSTREAM_SCHEMA_REGISTRY_URL) are never started, only checked. A server that already
answers on our port but was not started by us (no pid file of ours) is used as it is and
never stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipeline.config import Settings, redact_url
from pipeline.stack.kafka import KAFKA_VERSION, KafkaService
from pipeline.stack.process import (
    StackError,
    file_lock,
    is_loopback,
    live_pid,
    log_tail,
    pid_alive,
    port_open,
    read_pid,
    record_alive,
    stop,
    write_pid,
)
from pipeline.stack.redis import RedisService
from pipeline.stack.registry import RegistryService, registry_url

__all__ = [
    "ALL_SERVICES",
    "KAFKA_VERSION",
    "SERVICES",
    "ServiceStatus",
    "StackError",
    "StackInfo",
    "down",
    "ensure_deps",
    "ensure_up",
    "services_for",
    "session",
    "status",
]

SERVICES = ("kafka", "redis")
ALL_SERVICES = (*SERVICES, "registry")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0

Log = Callable[[str], None]


class Service(Protocol):
    name: str
    host: str
    port: int
    pid_file: Path
    log_file: Path

    @property
    def address(self) -> str: ...
    def answers(self, timeout: float = ...) -> bool: ...
    def prepare(self, log: Log) -> None: ...
    def launch(self, log: Log) -> int: ...


@dataclass(frozen=True)
class StackInfo:
    bootstrap: str
    redis_url: str
    started: list[str] = field(default_factory=list)  # services this call started
    registry_url: str = ""  # the Schema Registry, when it was one of the services


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    up: bool  # answers now
    pid: int | None  # our process, when we started it and it is alive
    local: bool  # loopback address (we may manage it) vs. an external server
    log_file: Path | None

    @property
    def managed(self) -> bool:
        return self.pid is not None


def _services(settings: Settings, names: Iterable[str] = SERVICES) -> list[Service]:
    makers: dict[str, Callable[[Settings], Service]] = {
        "kafka": KafkaService,
        "redis": RedisService,
        "registry": RegistryService,
    }
    unknown = set(names) - set(makers)
    if unknown:
        raise StackError(f"unknown service(s): {', '.join(sorted(unknown))}")
    return [makers[name](settings) for name in names]


def services_for(settings: Settings, *, registry: bool = False) -> tuple[str, ...]:
    """Kafka and Redis, and the Schema Registry when asked for or configured."""
    wanted = registry or bool(settings.schema_registry_url)
    return ALL_SERVICES if wanted else SERVICES


def _registry_known(settings: Settings) -> bool:
    """The registry belongs in `status`/`down`: configured, or one of ours is running."""
    ours = live_pid(RegistryService(settings).pid_file)
    return bool(settings.schema_registry_url) or ours is not None


def _shown(svc: Service) -> str:
    """A service's address fit for logs and `stack status`: a URL's password as `***`."""
    return redact_url(svc.address)


def _lock_path(settings: Settings) -> Path:
    return settings.state_dir / "stack" / ".lock"


def ensure_up(
    settings: Settings | None = None,
    log: Log = print,
    *,
    services: Iterable[str] = SERVICES,
    timeout: float = READY_TIMEOUT_S,
) -> StackInfo:
    """Make Kafka and Redis answer at the configured addresses, starting the local ones
    that are not running. Raises StackError (with the log file to read) when one won't."""
    settings = settings or Settings.from_env()
    services = list(services)
    with file_lock(_lock_path(settings)):
        info = _ensure_up(settings, log, services, timeout)
        _disown(settings, services)  # asked for explicitly: no test session may stop them
    return info


def _ensure_up(
    settings: Settings, log: Log, services: Iterable[str], timeout: float
) -> StackInfo:
    pending: list[tuple[Service, int, float]] = []
    for svc in _services(settings, services):
        if not is_loopback(svc.host):
            _wait_external(svc, log, timeout=min(timeout, 15.0))
            continue
        pid = live_pid(svc.pid_file)
        if pid is not None:
            _wait_running(svc, pid, timeout, log)
            continue
        if port_open(svc.host, svc.port) and svc.answers():
            log(f"{svc.name}: something else already answers at {_shown(svc)}; using it")
            continue
        if port_open(svc.host, svc.port):
            raise StackError(
                f"{svc.name}: port {svc.port} on {svc.host} is taken by something that "
                f"does not answer as {svc.name}; stop it or choose another port"
            )
        svc.prepare(log)
        begun = time.monotonic()
        pid = svc.launch(log)
        log(f"{svc.name}: starting (pid {pid}, log {svc.log_file})")
        pending.append((svc, pid, begun))
    started: list[str] = []
    while pending:  # poll all that were launched; report each as it comes up
        for item in list(pending):
            svc, pid, begun = item
            if _ready(svc, pid, begun, timeout):
                log(f"{svc.name}: up at {_shown(svc)} in {time.monotonic() - begun:.1f} s")
                started.append(svc.name)
                pending.remove(item)
        if pending:
            time.sleep(0.25)
    wanted_registry = "registry" in services
    return StackInfo(
        settings.kafka_bootstrap,
        settings.redis_url,
        started,
        registry_url(settings) if wanted_registry else "",
    )


def _wait_external(svc: Service, log: Log, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not svc.answers(timeout=3.0):
        if time.monotonic() >= deadline:
            raise StackError(
                f"{svc.name} at {_shown(svc)} (not a loopback address, so not started "
                f"here) does not answer"
            )
        time.sleep(0.5)
    log(f"{svc.name}: using {_shown(svc)} (external)")


def _ready(svc: Service, pid: int, begun: float, timeout: float) -> bool:
    """True once `svc` answers; raises StackError if its process died or time ran out."""
    if not pid_alive(pid):
        svc.pid_file.unlink(missing_ok=True)
        raise StackError(
            f"{svc.name} (pid {pid}) exited before answering at {_shown(svc)}; "
            f"see {svc.log_file}:\n{log_tail(svc.log_file)}"
        )
    if port_open(svc.host, svc.port, timeout=0.5) and svc.answers(timeout=2.0):
        return True
    if time.monotonic() - begun >= timeout:
        raise StackError(
            f"{svc.name} (pid {pid}) did not answer at {_shown(svc)} within "
            f"{timeout:.0f} s; see {svc.log_file}:\n{log_tail(svc.log_file)}\n"
            f"(`inferstream stack down` stops it)"
        )
    return False


def _wait_running(svc: Service, pid: int, timeout: float, log: Log) -> None:
    """Our earlier process is alive: wait until it answers (it may still be starting)."""
    begun = time.monotonic()
    while not _ready(svc, pid, begun, timeout):
        time.sleep(0.25)
    log(f"{svc.name}: already running at {_shown(svc)} (pid {pid})")


def down(
    settings: Settings | None = None,
    log: Log = print,
    *,
    services: Iterable[str] | None = None,
    timeout: float = STOP_TIMEOUT_S,
) -> list[str]:
    """Stop the servers `ensure_up` started (from their pid files); returns their names.
    Servers we did not start are left alone. By default: Kafka, Redis and, when configured
    or running, the registry."""
    settings = settings or Settings.from_env()
    if services is None:
        services = ALL_SERVICES if _registry_known(settings) else SERVICES
    with file_lock(_lock_path(settings)):
        return _down(settings, log, services, timeout)


def _down(settings: Settings, log: Log, services: Iterable[str], timeout: float) -> list[str]:
    stopped: list[str] = []
    for svc in _services(settings, services):
        pid = stop(svc.pid_file, timeout=timeout)
        if pid is not None:
            log(f"{svc.name}: stopped (pid {pid})")
            stopped.append(svc.name)
        elif is_loopback(svc.host) and port_open(svc.host, svc.port):
            log(f"{svc.name}: {_shown(svc)} was not started by inferstream; left running")
        else:
            log(f"{svc.name}: not running")
    _disown(settings, stopped)
    return stopped


def status(settings: Settings | None = None, *, registry: bool = False) -> list[ServiceStatus]:
    """Kafka and Redis, and the registry when asked for, configured or running."""
    settings = settings or Settings.from_env()
    result = []
    with_registry = registry or _registry_known(settings)
    for svc in _services(settings, ALL_SERVICES if with_registry else SERVICES):
        local = is_loopback(svc.host)
        pid = live_pid(svc.pid_file) if local else None
        up = port_open(svc.host, svc.port) and svc.answers(timeout=2.0)
        result.append(
            ServiceStatus(svc.name, _shown(svc), up, pid, local, svc.log_file if pid else None)
        )
    return result


def ensure_deps(settings: Settings | None = None, log: Log = print) -> None:
    """Install or fetch what `ensure_up` needs for local servers (redis-server, Kafka jars,
    the Schema Registry's archive and its Java 21+), without starting anything."""
    settings = settings or Settings.from_env()
    for svc in _services(settings, ALL_SERVICES):
        if is_loopback(svc.host):
            svc.prepare(log)


# ---------------------------------------------------------------- shared sessions


def _sessions_dir(settings: Settings) -> Path:
    return settings.state_dir / "stack" / "sessions"


def _session_owned_path(settings: Settings) -> Path:
    return settings.state_dir / "stack" / "session-started"


def _live_sessions(settings: Settings) -> list[Path]:
    """Lease files of sessions whose process still runs (stale ones are removed)."""
    alive = []
    for lease in sorted(_sessions_dir(settings).glob("*.pid")):
        record = read_pid(lease)
        if record is not None and record_alive(record):
            alive.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return alive


@contextlib.contextmanager
def session(
    settings: Settings | None = None,
    log: Log = print,
    *,
    keep: bool = False,
    timeout: float = READY_TIMEOUT_S,
    services: Iterable[str] = SERVICES,
) -> Iterator[StackInfo]:
    """The stack, up for the duration of a block (a test session, a demo).

    Servers running before are used and left running. What sessions start is stopped
    when the last session that uses it ends (several pytest runs may share one stack),
    unless `keep`. Leases live in <state_dir>/stack/sessions, one per process."""
    settings = settings or Settings.from_env()
    lease = _sessions_dir(settings) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.pid"
    owned_path = _session_owned_path(settings)
    with file_lock(_lock_path(settings)):
        write_pid(lease, os.getpid())
        try:
            info = _ensure_up(settings, log, list(services), timeout)
        except BaseException:
            lease.unlink(missing_ok=True)
            raise
        if info.started:
            _write_lines(owned_path, set(_read_lines(owned_path)) | set(info.started))
    try:
        yield info
    finally:
        with file_lock(_lock_path(settings)):
            lease.unlink(missing_ok=True)
            owned = [name for name in _read_lines(owned_path) if name in ALL_SERVICES]
            others = _live_sessions(settings)
            if keep:
                _disown(settings, owned)
            elif not owned:
                pass
            elif others:
                log(f"leaving {', '.join(owned)} running for {len(others)} other session(s)")
            else:
                _down(settings, log, owned, STOP_TIMEOUT_S)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _write_lines(path: Path, names: Iterable[str]) -> None:
    path.write_text("".join(f"{name}\n" for name in sorted(names)))


def _disown(settings: Settings, names: Iterable[str]) -> None:
    """`names` are no longer to be stopped when the last session ends."""
    path = _session_owned_path(settings)
    owned = set(_read_lines(path))
    if owned & set(names):
        _write_lines(path, owned - set(names))
