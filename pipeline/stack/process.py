"""Pid files and detached server processes: start, check, stop (POSIX)."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(Exception):
    """The local stack cannot be brought up (or down); the message says what to do."""


def parse_hostport(text: str, *, default_port: int) -> tuple[str, int]:
    """'host:port', '[v6]:port' or a bare host -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:  # bare host name, or a bare IPv6 address
        host, port_text = text, ""
    if not host:
        raise StackError(f"no host in {text!r}")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise StackError(f"bad port in {text!r}") from None
    if not 0 < port < 65536:
        raise StackError(f"port out of range in {text!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """`host` is this machine's loopback (so the local stack may start a server for it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: the pid and, on Linux, the process start time (clock ticks
    since boot) so that a recycled pid is not mistaken for our server."""

    pid: int
    start_ticks: int | None = None


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` from /proc (None where there is no /proc or no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def _reap(pid: int) -> None:
    """Collect `pid` if it is a finished child of this process (else it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we have
    state = stat[stat.rfind(")") + 2 :].split(" ", 1)[0]
    return state not in ("Z", "X")


def write_pid(path: Path, pid: int) -> PidRecord:
    record = PidRecord(pid, process_start_ticks(pid))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    line = str(pid) if record.start_ticks is None else f"{pid} {record.start_ticks}"
    tmp.write_text(line + "\n")
    tmp.replace(path)
    return record


def read_pid(path: Path) -> PidRecord | None:
    """The record in `path`, or None when it is missing or unreadable."""
    try:
        parts = path.read_text().split()
    except OSError:
        return None
    try:
        pid = int(parts[0])
        ticks = int(parts[1]) if len(parts) > 1 else None
    except (IndexError, ValueError):
        return None
    return PidRecord(pid, ticks)


def record_alive(record: PidRecord) -> bool:
    """The recorded process is still running (and is the same process, not a reused pid)."""
    if not pid_alive(record.pid):
        return False
    if record.start_ticks is None:
        return True
    now = process_start_ticks(record.pid)
    return now is None or now == record.start_ticks


def live_pid(path: Path) -> int | None:
    """Pid of the live process recorded in `path`; a stale pid file is removed."""
    record = read_pid(path)
    if record is None:
        if path.exists():
            path.unlink(missing_ok=True)
        return None
    if record_alive(record):
        return record.pid
    path.unlink(missing_ok=True)
    return None


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    max_log_bytes: int = 20_000_000,
) -> int:
    """Start `argv` detached (own session, so it outlives the caller), stdout and stderr
    appended to `log_path` (moved to `<log>.1` first when it is over `max_log_bytes`);
    record its pid in `pid_path` and return it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists() and log_path.stat().st_size > max_log_bytes:
        log_path.replace(log_path.with_name(log_path.name + ".1"))
    with open(log_path, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    # The Popen object is dropped; pid_alive() reaps the child if it ends while we run.
    proc.returncode = 0  # keeps Popen.__del__ from warning about a still-running child
    write_pid(pid_path, proc.pid)
    return proc.pid


def stop(pid_path: Path, *, timeout: float = 20.0) -> int | None:
    """Stop the process recorded in `pid_path`: SIGTERM, wait up to `timeout` s, then SIGKILL.
    Removes the pid file. Returns the pid that was stopped, or None if none was running."""
    record = read_pid(pid_path)
    if record is None or not record_alive(record):
        pid_path.unlink(missing_ok=True)
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    if not wait_for(lambda: not pid_alive(record.pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(record.pid) == record.pid:  # a session leader we spawned
                os.killpg(record.pid, signal.SIGKILL)  # ... and anything it started
            else:
                os.kill(record.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(record.pid), 5.0)
    pid_path.unlink(missing_ok=True)
    return record.pid


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on `path` (serialises concurrent `stack up` calls)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch_once(home: Path, fetch: Callable[[], str]) -> None:
    """Run `fetch` once for the cache directory `home`: under a lock across processes, and not
    at all once a finished fetch left its marker (`fetch` returns the marker's text)."""
    marker = home / ".complete"
    if marker.exists():
        return
    with file_lock(home.parent / f".{home.name}.lock"):
        if marker.exists():  # another process fetched it while we waited
            return
        marker.write_text(fetch())


def run_maven(
    argv: Sequence[str], what: str, hint: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`mvn -q -B <argv>` (quiet, batch mode); one line naming `hint` when Maven is missing."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"`mvn` (Maven) is needed once to fetch {what}. {hint}")
    return subprocess.run(
        [mvn, "-q", "-B", *argv], capture_output=True, text=True, check=False, cwd=cwd
    )


def maven_failed(result: subprocess.CompletedProcess[str], what: str) -> StackError:
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
    return StackError(f"Maven could not fetch {what}:\n{tail}")
