"""The terminal view: one table refreshed in place."""

from __future__ import annotations

from rich.table import Table

from pipeline.demo.metrics import DemoStats


def render(stats: DemoStats, elapsed_s: float, seconds: float, note: str = "") -> Table:
    p50, p95, p99 = stats.percentiles()
    table = Table(
        title=f"inferstream demo: fraud stream  [{elapsed_s:5.1f}s / {seconds:.0f}s]",
        title_justify="left",
        show_header=False,
        min_width=60,
    )
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("events/s in", f"{stats.produced.rate():,.0f}")
    table.add_row("events/s out", f"{stats.results.rate():,.0f}")
    table.add_row("produced / scored", f"{stats.produced.total:,} / {stats.results.total:,}")
    table.add_row("end-to-end latency p50 / p95 / p99", f"{p50:,.1f} / {p95:,.1f} / {p99:,.1f} ms")
    table.add_row("mean batch size", f"{stats.mean_batch:,.1f}")
    table.add_row("flagged (review + decline)", f"{stats.fraud_rate:.2%}")
    table.add_row("dead letters", f"{stats.dead_letters:,}")
    if stats.open_alerts:
        for feature, line in sorted(stats.open_alerts.items()):
            table.add_row(f"drift alert: {feature}", line, style="bold red")
    else:
        table.add_row(
            "drift alerts", "none open" + (f" ({len(stats.alerts)} so far)" if stats.alerts else "")
        )
    if note:
        table.caption = note
    return table


def summary(stats: DemoStats, elapsed_s: float) -> str:
    p50, p95, p99 = stats.percentiles(recent=False)
    lines = [
        f"demo summary ({elapsed_s:.1f}s)",
        f"  produced {stats.produced.total:,}, scored {stats.results.total:,}, "
        f"dead letters {stats.dead_letters:,}",
        f"  throughput {stats.results.total / max(elapsed_s, 1e-3):,.0f} events/s",
        f"  end-to-end latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms",
        f"  mean batch size {stats.mean_batch:.1f}, flagged {stats.fraud_rate:.2%}",
        f"  drift alert transitions: {len(stats.alerts)}; open at the end: "
        + (", ".join(sorted(stats.open_alerts)) or "none"),
    ]
    return "\n".join(lines)
