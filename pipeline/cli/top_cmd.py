"""`inferstream top`: a live console of a running deployment, from its metrics.

Reads every worker's `/metrics` (the targets directory the workers list themselves in, or
`--url`), or a Prometheus (`--prometheus`), and shows per stream and role: events/s in and
out, event-age p50/p95/p99 (record timestamp to delivery, from the histogram between two
reads), mean batch size, lag and its age, dead-letter and degraded rates, cost per inference
and open drift alerts, refreshed in place every `--interval` seconds (`--once`: one table).
"""

from __future__ import annotations

import argparse
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.cli import CliError, positive_float

Key = tuple[str, str]  # (role, stream)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("top", help="live console of the running workers, from their metrics")
    p.add_argument("--url", action="append", default=[], help="a worker's /metrics base URL")
    p.add_argument("--targets-dir", help="file_sd directory (default: the workers' own)")
    p.add_argument(
        "--prometheus",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="read a Prometheus instead (default URL: INFERSTREAM_PROMETHEUS_URL)",
    )
    p.add_argument("--interval", type=positive_float, default=2.0, help="seconds per refresh")
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.set_defaults(func=run)


# -- reading /metrics ----------------------------------------------------------------------
@dataclass
class Totals:
    """Cumulative numbers of one (role, stream), summed over processes."""

    consumed: float = 0.0
    scored: float = 0.0
    dead: float = 0.0
    degraded: float = 0.0
    cost: float = 0.0
    batches: float = 0.0
    batch_events: float = 0.0
    lag: float = 0.0
    lag_s: float = 0.0
    drift_open: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count


def parse(text: str, role: str, into: dict[Key, Totals]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            stream = s.labels.get("stream")
            if stream is None:
                continue
            t = into.setdefault((role, stream), Totals())
            n, v, labels = s.name, s.value, s.labels
            if n == "inferstream_events_consumed_total":
                t.consumed += v
            elif n == "inferstream_events_total":
                if labels.get("outcome") == "scored":
                    t.scored += v
                else:
                    t.dead += v
            elif n == "inferstream_degraded_total":
                t.degraded += v
            elif n == "inferstream_cost_units_total":
                t.cost += v
            elif n == "inferstream_batch_size_count":
                t.batches += v
            elif n == "inferstream_batch_size_sum":
                t.batch_events += v
            elif n == "inferstream_consumer_lag":
                t.lag += v
            elif n == "inferstream_consumer_lag_seconds":
                t.lag_s = max(t.lag_s, v)
            elif n == "inferstream_drift_alert_open":
                t.drift_open += v
            elif n == "inferstream_event_age_seconds_bucket" and labels.get("phase") == "total":
                le = float(labels["le"])
                t.buckets[le] = t.buckets.get(le, 0.0) + v


def scrape(urls: list[str]) -> dict[Key, Totals]:
    out: dict[Key, Totals] = {}
    for url in urls:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue  # a process that just stopped: the others still count
        role = "score"
        for line in text.splitlines():
            if line.startswith("inferstream_info{"):
                role = line.split('role="', 1)[1].split('"', 1)[0]
                break
        parse(text, role, out)
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative `buckets` (le -> count)."""
    les = sorted(buckets)
    if not les or buckets[les[-1]] <= 0:
        return None
    total = buckets[les[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for le in les:
        count = buckets[le]
        if count >= rank:
            if le == float("inf"):
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = le, count
    return lower


def rows_between(before: dict[Key, Totals], after: dict[Key, Totals], dt: float) -> list[dict]:
    rows = []
    for key in sorted(after):
        a, b = after[key], before.get(key, Totals())
        d_scored = a.scored - b.scored
        delta = {le: c - b.buckets.get(le, 0.0) for le, c in a.buckets.items()}
        d_batches = a.batches - b.batches
        rows.append(
            {
                "role": key[0],
                "stream": key[1],
                "in_s": (a.consumed - b.consumed) / dt,
                "out_s": d_scored / dt,
                "p50": quantile(0.5, delta),
                "p95": quantile(0.95, delta),
                "p99": quantile(0.99, delta),
                "batch": (a.batch_events - b.batch_events) / d_batches if d_batches else None,
                "lag": a.lag,
                "lag_s": a.lag_s,
                "dlq_s": (a.dead - b.dead) / dt,
                "degraded_s": (a.degraded - b.degraded) / dt,
                "cost": (a.cost - b.cost) / d_scored
                if d_scored
                else (a.cost / a.scored if a.scored else None),
                "drift_open": a.drift_open,
            }
        )
    return rows


# -- reading Prometheus ---------------------------------------------------------------------
PROMQL = {
    "in_s": "sum by (role, stream) (rate(inferstream_events_consumed_total[{w}]))",
    "out_s": 'sum by (role, stream) (rate(inferstream_events_total{{outcome="scored"}}[{w}]))',
    "p50": "histogram_quantile(0.5, sum by (role, stream, le) "
    '(rate(inferstream_event_age_seconds_bucket{{phase="total"}}[{w}])))',
    "p95": "histogram_quantile(0.95, sum by (role, stream, le) "
    '(rate(inferstream_event_age_seconds_bucket{{phase="total"}}[{w}])))',
    "p99": "histogram_quantile(0.99, sum by (role, stream, le) "
    '(rate(inferstream_event_age_seconds_bucket{{phase="total"}}[{w}])))',
    "batch": "sum by (role, stream) (rate(inferstream_batch_size_sum[{w}])) / "
    "sum by (role, stream) (rate(inferstream_batch_size_count[{w}]))",
    "lag": "sum by (role, stream) (inferstream_consumer_lag)",
    "lag_s": "max by (role, stream) (inferstream_consumer_lag_seconds)",
    "dlq_s": 'sum by (role, stream) (rate(inferstream_events_total{{outcome="dead_lettered"}}'
    "[{w}]))",
    "degraded_s": "sum by (role, stream) (rate(inferstream_degraded_total[{w}]))",
    "cost": "sum by (role, stream) (rate(inferstream_cost_units_total[5m])) / "
    'sum by (role, stream) (rate(inferstream_events_total{{outcome="scored"}}[5m]))',
    "drift_open": "sum by (role, stream) (inferstream_drift_alert_open)",
}


def prometheus_rows(base: str, window_s: float) -> list[dict]:
    import json

    window = f"{max(int(window_s * 4), 15)}s"  # a few scrapes wide
    rows: dict[Key, dict[str, Any]] = defaultdict(dict)
    for column, template in PROMQL.items():
        query = urllib.parse.urlencode({"query": template.format(w=window)})
        try:
            with urllib.request.urlopen(f"{base}/api/v1/query?{query}", timeout=5) as r:
                body = json.loads(r.read())
        except OSError as exc:
            raise CliError(f"no answer from Prometheus at {base}: {exc}") from None
        for item in body.get("data", {}).get("result", []):
            m = item["metric"]
            value = float(item["value"][1])
            key = (m.get("role", "?"), m.get("stream", "?"))
            rows[key][column] = None if value != value else value  # NaN: no traffic
    return [{"role": k[0], "stream": k[1], **v} for k, v in sorted(rows.items())]


# -- showing --------------------------------------------------------------------------------
COLUMNS = [
    ("stream", "stream", None), ("role", "role", None), ("in/s", "in_s", "{:,.0f}"),
    ("out/s", "out_s", "{:,.0f}"), ("p50 ms", "p50", "ms"), ("p95 ms", "p95", "ms"),
    ("p99 ms", "p99", "ms"), ("batch", "batch", "{:.1f}"), ("lag", "lag", "{:,.0f}"),
    ("lag age s", "lag_s", "{:.1f}"), ("dlq/s", "dlq_s", "{:.1f}"),
    ("degraded/s", "degraded_s", "{:.1f}"), ("cost/inference", "cost", "{:.3g}"),
    ("drift alerts", "drift_open", "{:.0f}"),
]  # fmt: skip


def cell(row: dict, key: str, fmt: str | None) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if fmt is None:
        return str(value)
    if fmt == "ms":
        return f"{value * 1000:.1f}"
    return fmt.format(value)


def table(rows: list[dict], source: str) -> Any:
    from rich.table import Table

    t = Table(title=f"inferstream top  ({source}, {time.strftime('%H:%M:%S')})")
    for title, _, fmt in COLUMNS:
        t.add_column(title, justify="left" if fmt is None else "right")
    for row in rows:
        t.add_row(*(cell(row, key, fmt) for _, key, fmt in COLUMNS))
    if not rows:
        t.caption = "no engines found"
    return t


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from pipeline.config import settings
    from pipeline.metrics.targets import read_targets, targets_dir

    cfg = settings()
    interval = args.interval
    if args.prometheus is not None:
        base = (args.prometheus or cfg.prometheus_url).rstrip("/")

        def read() -> list[dict]:
            return prometheus_rows(base, interval)

        source = base
    else:
        directory = Path(args.targets_dir or cfg.metrics_targets_dir or targets_dir(cfg.state_dir))

        def urls() -> list[str]:
            return list(args.url) or [f"http://{a}" for a in read_targets(directory)]

        if not urls():
            raise CliError(f"no workers listed in {directory} (or give --url)")
        source = ", ".join(args.url) or str(directory)
        state = {"before": scrape(urls()), "at": time.monotonic()}

        def read() -> list[dict]:
            time.sleep(max(0.0, interval - (time.monotonic() - state["at"])))
            after, now = scrape(urls()), time.monotonic()
            rows = rows_between(state["before"], after, max(now - state["at"], 1e-9))
            state["before"], state["at"] = after, now
            return rows

    console = Console()
    if not console.is_terminal:  # piped: the whole table, not cut to 80 columns
        console = Console(width=200)
    if args.once:
        console.print(table(read(), source))
        return 0
    try:
        with Live(table([], source), console=console, refresh_per_second=4) as live:
            while True:
                live.update(table(read(), source))
                if args.prometheus is not None:
                    time.sleep(interval)
    except KeyboardInterrupt:
        return 0
