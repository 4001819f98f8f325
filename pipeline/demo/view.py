"""The terminal view: one table refreshed in place, and the summary at the end."""

from __future__ import annotations

from rich.table import Table

from pipeline.demo.metrics import BehindTracker, DemoStats, fmt


def _latency(p50: float, p95: float, p99: float) -> str:
    if p50 != p50:  # nan: no results yet
        return "-"
    return f"{p50:,.1f} / {p95:,.1f} / {p99:,.1f} ms"


def render(
    stats: DemoStats,
    elapsed_s: float,
    seconds: float,
    note: str = "",
    behind: BehindTracker | None = None,
) -> Table:
    table = Table(
        title=f"inferstream demo: {stats.stream} stream  [{elapsed_s:5.1f}s / {seconds:.0f}s]",
        title_justify="left",
        show_header=False,
        min_width=60,
    )
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("events/s in", f"{stats.produced.rate():,.0f}")
    table.add_row("events/s out", f"{stats.results.rate():,.0f}")
    table.add_row("produced / scored", f"{stats.produced.total:,} / {stats.results.total:,}")
    table.add_row("end-to-end latency p50 / p95 / p99", _latency(*stats.percentiles()))
    table.add_row("mean batch size", fmt(stats.mean_batch))
    table.add_row("flagged", fmt(stats.flagged_share, ".2%"))
    table.add_row("dead letters", f"{stats.dead_letters:,}")
    if behind is not None and behind.behind:
        table.add_row(
            "worker is BEHIND", f"{stats.lag:,} requests waiting for a result", style="bold yellow"
        )
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


def behind_line(stats: DemoStats, rate: float) -> str:
    return (
        f"warning: the worker is falling behind: {stats.lag:,} produced requests have no result "
        f"yet (about {stats.lag / rate:.1f} s of input at {rate:,.0f}/s); try a lower --rate"
    )


def summary(
    stats: DemoStats,
    elapsed_s: float,
    behind: BehindTracker | None = None,
    requested_rate: float | None = None,
) -> str:
    p50, p95, p99 = stats.percentiles(recent=False)
    answered = stats.results.total + stats.dead_letters
    lines = [
        f"demo summary ({elapsed_s:.1f}s)",
        f"  produced {stats.produced.total:,}, scored {stats.results.total:,}, "
        f"dead letters {stats.dead_letters:,}",
        f"  throughput {stats.results.total / max(elapsed_s, 1e-3):,.0f} events/s",
        "  end-to-end latency "
        + (
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms"
            if p50 == p50
            else "- (no results)"
        ),
        f"  mean batch size {fmt(stats.mean_batch)}, flagged {fmt(stats.flagged_share, '.2%')}",
        f"  drift alert transitions: {len(stats.alerts)}; open at the end: "
        + (", ".join(sorted(stats.open_alerts)) or "none"),
    ]
    if requested_rate and stats.produce_s > 0:
        achieved = stats.produced.total / stats.produce_s
        if achieved < 0.9 * requested_rate:
            lines.append(
                f"  the producer reached only {achieved:,.0f} of the requested "
                f"{requested_rate:,.0f} requests/s"
            )
    if stats.foreign:
        lines.append(f"  ignored {stats.foreign:,} results of requests from earlier runs")
    if stats.duplicates:
        lines.append(f"  {stats.duplicates:,} requests were answered twice (redelivery)")
    if behind is not None and behind.episodes:
        lines.append(
            f"  the worker fell behind {behind.episodes} time(s); "
            f"largest backlog {behind.worst_lag:,} requests"
        )
    if stats.produce_error:
        lines.append(f"  PRODUCING FAILED: {stats.produce_error}")
    if stats.lag:
        lines.append(
            f"  NOT EVERYTHING WAS SCORED: {stats.lag:,} of {stats.produced.total:,} produced "
            f"requests got neither a result nor a dead letter "
            f"({answered:,} answered, {answered / max(stats.produced.total, 1):.1%})"
        )
    elif not stats.produce_error:
        lines.append(
            f"  everything produced was scored: {answered:,} of {stats.produced.total:,} "
            "answered (results + dead letters)"
        )
    return "\n".join(lines)
