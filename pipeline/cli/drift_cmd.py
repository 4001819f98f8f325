"""`inferstream drift worker | status`: the drift detector on a stream, and where it stands."""

from __future__ import annotations

import argparse
import json
import time

from pipeline.cli import CliError
from pipeline.config import settings


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli import add_log_level, positive_int
    from pipeline.cli.worker_cmd import streams_arg
    from pipeline.core.registry import DEFAULT_STREAM, stream_names

    drift = sub.add_parser("drift", help="streaming drift detection on request inputs")
    actions = drift.add_subparsers(dest="action", metavar="ACTION", required=True)
    worker = actions.add_parser("worker", help="run the drift engine (its own consumer group)")
    worker.add_argument(
        "--streams",
        type=streams_arg,
        default=DEFAULT_STREAM,
        help=f"comma list of streams to watch ({', '.join(stream_names())}; "
        f"default {DEFAULT_STREAM})",
    )
    worker.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="engine processes in the drift group (default 1)",
    )
    worker.add_argument("--model-version", help="reference of this model version (default: latest)")
    add_log_level(worker)
    worker.set_defaults(func=run_worker)
    status = actions.add_parser("status", help="per-feature statistics and open alerts")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=run_status)


def run_worker(args: argparse.Namespace) -> int:
    from pipeline.cli.worker_cmd import run_worker as run_any_worker

    return run_any_worker(args, "drift", ["drift", "worker"])


def load_statuses(redis_url: str, namespace: str) -> list[dict]:
    from pipeline.core.registry import stream_names
    from pipeline.redis.state import RedisStateStore

    store = RedisStateStore(redis_url, prefix="inferstream:drift:")
    keys = [k for stream in stream_names() for k in store.keys(f"status:{namespace}{stream}:*")]
    if not store.available:
        raise CliError(f"cannot reach Redis at {redis_url}")
    return [json.loads(blob) for key in keys if (blob := store.get(key))]


def run_status(args: argparse.Namespace) -> int:
    cfg = settings()
    statuses = load_statuses(cfg.redis_url, cfg.topic_namespace)
    if args.json:
        print(json.dumps(statuses, indent=2))
        return 0
    if not statuses:
        print("no drift detector has reported yet (is `inferstream drift worker` running?)")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for status in statuses:
        age = time.time() - status["updated_at"]
        table = Table(
            title=f"{status['stream']} / {status['model']}  reference "
            f"{status['reference_version']}  rows {status['rows_seen']:,}  "
            f"calibration {status.get('calibration') or 'iid'}  (updated {age:.0f}s ago)",
            title_justify="left",
        )
        for column in ("feature", "test", "z", "threshold", "statistic", "window", "state"):
            table.add_column(column, justify="left" if column in ("feature", "test") else "right")
        for f in sorted(status["features"], key=lambda f: -f["z"] / max(f["threshold"], 1e-9)):
            over = f["z"] >= f["threshold"]
            table.add_row(
                f["feature"],
                f["test"],
                f"{f['z']:.2f}",
                f"{f['threshold']:.2f}",
                f"{f['statistic']:.3f}",
                str(f["window"]),
                f["state"],
                style="bold red" if over else None,
            )
        console.print(table)
        diurnal = status.get("diurnal")
        if diurnal:
            console.print(
                f"time of day ({diurnal['days']} whole days tested): last day z={diurnal['z']:.2f} "
                f"JS={diurnal['statistic']:.3f} (threshold {diurnal['threshold']:.2f}) "
                f"{diurnal['state']}"
            )
        for alert in status["open_alerts"]:
            console.print(
                f"open alert: {alert['feature']} {alert['state']} {alert['severity']} "
                f"D={alert['statistic']:.3f} z={alert['z']:.1f} "
                f"(threshold {alert['threshold']:.1f}, window {alert['window']}, "
                f"calibration {alert.get('calibration', 'iid')})"
            )
    return 0
