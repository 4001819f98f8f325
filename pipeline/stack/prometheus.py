"""A local Prometheus on loopback, scraping every worker process of this machine.

Debian's `prometheus` package is installed with apt-get when it is missing (as redis-server
is). The generated config has one job, `inferstream`, whose targets are the file_sd files each
worker process writes (`<state dir>/prometheus/targets/<pid>.json`, pipeline/metrics/
targets.py), and the recording and alert rules of `ops/prometheus/rules.yml`.

    from pipeline.stack.prometheus import LocalPrometheus
    prom = LocalPrometheus(settings, port=9090).start(print)   # returns once it is ready
    prom.query('stream:inferstream_event_age_seconds:p99_1m')
    prom.stop()

`python -m pipeline.stack.prometheus [--port 9090]` does the same from a shell, until Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import DATA_ROOT, Settings
from pipeline.metrics.targets import targets_dir
from pipeline.stack.apt import Log, apt_install, apt_prefix
from pipeline.stack.process import StackError, live_pid, log_tail, spawn, stop, wait_for

RULES = DATA_ROOT / "ops" / "prometheus" / "rules.yml"
GATEWAY_RULES = DATA_ROOT / "ops" / "prometheus" / "gateway_rules.yml"
RULE_FILES = (RULES, GATEWAY_RULES)  # what the compose Prometheus loads too
NO_PROMETHEUS_HINT = "Install it with `apt-get install prometheus` (Debian/Ubuntu)."


def find_prometheus() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def ensure_prometheus(log: Log) -> str:
    """Path of the `prometheus` binary, installed with apt-get when missing and we may."""
    found = find_prometheus()
    if found:
        return found
    prefix = apt_prefix()
    if prefix is None:
        raise StackError(f"`prometheus` is not installed. {NO_PROMETHEUS_HINT}")
    result = apt_install(prefix, "prometheus", log)
    found = find_prometheus()
    if result.returncode != 0 or not found:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise StackError(f"installing prometheus failed:\n{tail}\n{NO_PROMETHEUS_HINT}")
    return found


def config_text(targets: Path, rules: Sequence[Path], scrape_interval_s: float = 1.0) -> str:
    """The generated prometheus.yml (JSON is YAML)."""
    interval = f"{int(scrape_interval_s * 1000)}ms"
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "inferstream",
                "scrape_timeout": interval,
                "file_sd_configs": [{"files": [str(targets / "*.json")], "refresh_interval": "1s"}],
            }
        ],
    }
    if found := [str(path) for path in rules if path.is_file()]:
        config["rule_files"] = found
    return json.dumps(config, indent=2)


class LocalPrometheus:
    def __init__(
        self,
        settings: Settings,
        port: int = 9090,
        targets: Path | None = None,
        scrape_interval_s: float = 1.0,
        directory: Path | None = None,
    ) -> None:
        self.settings = settings
        self.port = port
        self.targets = targets or Path(
            settings.metrics_targets_dir or targets_dir(settings.state_dir)
        )
        self.scrape_interval_s = scrape_interval_s
        self.dir = directory or settings.state_dir / "stack" / f"prometheus-{port}"
        self.pid_file = self.dir / "prometheus.pid"
        self.log_file = self.dir / "prometheus.log"
        self.url = f"http://127.0.0.1:{port}"

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, log: Log, timeout_s: float = 60.0) -> LocalPrometheus:
        binary = ensure_prometheus(log)
        if live_pid(self.pid_file) is not None and self.answers():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        self.targets.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(config_text(self.targets, RULE_FILES, self.scrape_interval_s))
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--web.enable-lifecycle",
        ]
        spawn(argv, log_path=self.log_file, pid_path=self.pid_file, cwd=self.dir)
        if not wait_for(self.answers, timeout_s):
            tail = log_tail(self.log_file)
            self.stop()
            raise StackError(f"prometheus did not become ready in {timeout_s:.0f}s:\n{tail}")
        log(f"prometheus ready at {self.url}, scraping {self.targets}/*.json")
        return self

    def stop(self) -> None:
        stop(self.pid_file)

    # -- the HTTP API ------------------------------------------------------------------------
    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise StackError(f"prometheus {path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector result of `expr` (raises StackError if it does not parse)."""
        return self.api("query", query=expr)["result"]


def main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m pipeline.stack.prometheus")
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args(argv)
    prom = LocalPrometheus(Settings.from_env(), port=args.port)
    try:
        prom.start(lambda line: print(line, file=sys.stderr))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        prom.stop()


if __name__ == "__main__":
    sys.exit(main())
