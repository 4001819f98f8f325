"""`inferstream replay <stream>`: re-run a range through a model version, diff against served."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.config import settings
from pipeline.core.registry import stream_names


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli import non_negative_float, positive_int

    p = sub.add_parser(
        "replay",
        help="re-score a range of <stream>.requests and compare with what was served",
        description="Reads a time or offset range of <stream>.requests with assign() (no "
        "consumer group, no offsets moved), re-scores it with the worker's own handler in a "
        "sandbox (no cache, nothing published) and joins it with the served results and "
        "provenance by request.",
    )
    p.add_argument("stream", choices=stream_names())
    span = p.add_mutually_exclusive_group(required=True)
    span.add_argument("--from", dest="from_", metavar="TIME",
                      help="start: ISO-8601 (2026-12-01T13:00:00Z) or relative (-10m, -2h)")
    span.add_argument("--offsets", metavar="P:START-END,...",
                      help="offset ranges per partition, END exclusive")
    span.add_argument("--request-ids", type=Path, metavar="FILE",
                      help="the requests with these ids, one per line")
    p.add_argument("--to", metavar="TIME", help="end, exclusive (default: now)")
    p.add_argument("--model-version", help="replay with this version (default: the served one)")
    p.add_argument("--against", metavar="V2",
                   help="also re-score with version V2 and compare it with the replay")
    p.add_argument("--noise", action="store_true",
                   help="replay twice: the A/A difference is the runtime's own noise floor")
    p.add_argument("--sandbox", action="store_true",
                   help="also publish the replayed results to <stream>.replay.<replay id>, "
                   "marked replay=true with their source offsets (kept a week)")
    p.add_argument("--tolerance", type=non_negative_float, default=1e-6,
                   help="largest absolute difference of a numeric output still counted as "
                   "agreeing (default 1e-6)")
    p.add_argument("--top", type=positive_int, default=10, help="largest differences listed")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")
    p.add_argument("--html", type=Path, metavar="PATH",
                   help="also write the report as one self-contained HTML page with plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.cli import CliError
    from pipeline.replay.ranges import offset_ranges, time_range
    from pipeline.replay.run import replay

    if args.to is not None and args.from_ is None:
        raise CliError("--to needs --from", 2)
    times = time_range(args.from_, args.to) if args.from_ is not None else None
    offsets = offset_ranges(args.offsets) if args.offsets is not None else None
    ids = _request_ids(args.request_ids) if args.request_ids is not None else None
    for flag, path in (("--json", args.json), ("--html", args.html)):
        if path is not None and not path.parent.is_dir():
            raise CliError(f"{flag} {path}: no directory {path.parent}", 2)
    cfg = settings()
    with _progress(not args.quiet) as progress:
        report = replay(
            cfg, args.stream, times, offsets, args.model_version, args.tolerance, args.top,
            progress, against=args.against, noise=args.noise, sandbox=args.sandbox,
            request_ids=ids,
        )  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if args.html is not None:
        from pipeline.replay.html import render_html

        args.html.write_text(render_html(report), encoding="utf-8")
    print(render(report))
    return 0


def _request_ids(path: Path) -> list[str]:
    from pipeline.cli import CliError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"--request-ids {path}: no such file", 2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--request-ids {path}: cannot read it: {exc}", 2) from None
    ids = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    if not ids:
        raise CliError(f"--request-ids {path}: no request id in it (one per line)", 2)
    return list(dict.fromkeys(ids))


class _progress:
    """A transient progress bar over the records read (rich), or nothing."""

    def __init__(self, show: bool) -> None:
        self.show = show and sys.stderr.isatty()

    def __enter__(self) -> Any:
        if not self.show:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), transient=True,
        )  # fmt: skip
        self.bar.__enter__()
        task = self.bar.add_task("reading", total=None)
        return lambda done, total: self.bar.update(task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.show:
            self.bar.__exit__(*exc)


def render(report: dict[str, Any]) -> str:
    lines = [_render_one(report)]
    for name, title in (("against", f"against {report.get('against_version')}"),
                        ("noise", "A/A noise floor (the same versions replayed again)")):
        if name in report:
            lines.append(f"\n{title}, compared with the replay above:")
            lines.append(_render_agreement(report[name]))
    return "\n".join(lines)


def _render_agreement(report: dict[str, Any]) -> str:
    lines = []
    for name, agreement in report["agreement"].items():
        line = (
            f"{name}: identical {agreement['identical']:,}, within {report['tolerance']:g} "
            f"{agreement['within_tolerance']:,}, differing {agreement['differing']:,}"
        )
        if "abs_delta" in agreement:
            d = agreement["abs_delta"]
            line += f"; |delta| p50 {d['p50']:.3g} p99 {d['p99']:.3g} max {d['max']:.3g}"
        lines.append(line)
        for flip, n in agreement.get("flips", {}).items():
            lines.append(f"  {flip}: {n:,}")
        for item in agreement.get("largest", [])[:5]:
            lines.append(
                f"  {item['request_id']}: {item['served']!r} -> {item['replayed']!r} "
                f"(|delta| {item['abs_delta']:.3g})"
            )
    return "\n".join(lines)


def _render_one(report: dict[str, Any]) -> str:
    c = report["counts"]
    lines = [
        f"replay of {report['stream']}: {c['in_range']:,} requests in range "
        f"({len(report['coverage'])} partitions), {report['replayed_per_s']:,.0f} requests/s",
    ]
    for row in report["coverage"]:
        note = "" if row["records"] else "  (no record in the range)"
        lines.append(
            f"  partition {row['partition']}: offsets {row['start']}-{row['end']} "
            f"({row['records']:,}){note}"
        )
    lines.append(
        f"replayed {c['replayed']:,}, matched to a served result {c['matched']:,}, "
        f"replay only {c['unmatched_replay_only']:,}, served only {c['unmatched_served_only']:,}, "
        f"dead-lettered on replay {c['dead_lettered_on_replay']:,} "
        f"(when served: {c['dead_lettered_when_served']:,})"
    )
    versions = report["model_versions"]
    lines.append(f"model versions: served {versions['served']}, replayed {versions['replayed']}")
    fidelity = report["fidelity"]
    lines.append(
        f"input fidelity: data_hash equal for {c['data_hash_equal']:,} of {c['matched']:,}"
        + (f"; {fidelity['mismatch_count']:,} differ" if fidelity["mismatch_count"] else "")
    )
    for mismatch in fidelity["mismatches"]:
        lines.append(
            f"  {mismatch['request_id']}: preprocessing served {mismatch['served_preprocessing']}"
            f", now {mismatch['replayed_preprocessing']}"
        )
    lines.append(_render_agreement(report))
    asked = report.get("request_ids")
    if asked and asked["not_found"]:
        lines.append(
            f"{asked['not_found']:,} of {asked['asked']:,} request ids were found nowhere: "
            + ", ".join(asked["not_found_first"])
        )
    if report.get("sandbox_topic"):
        lines.append(f"replayed results published to {report['sandbox_topic']}")
    lines.append("verdict: " + ("replay agrees with what was served" if report["agree"]
                                else "replay DIFFERS from what was served (see above)"))
    return "\n".join(lines)
