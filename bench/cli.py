"""`python -m bench` / `inferstream bench`: arguments, then run, print the table, write JSON."""

from __future__ import annotations

import argparse
import sys

from bench.window import DEFAULT_MS as DEFAULT_WINDOW_MS
from bench.window import ENV as WINDOW_ENV

SMOKE = {"events": 3000, "rate_seconds": 2.0, "loads": "0.5"}


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--smoke", action="store_true", help="few events: reference, floor, ceiling, drift"
    )
    p.add_argument("--events", type=int, default=30_000, help="flat-out backlog per config")
    p.add_argument(
        "--rate-seconds", type=float, default=6.0, help="length of each fixed-rate phase"
    )
    p.add_argument(
        "--loads", default="0.25,0.5,0.9", help="offered loads, fractions of the reference's max"
    )
    p.add_argument("--slos", default="10,50", help="latency SLO sweep (ms), at --batch-max")
    p.add_argument("--batch-sizes", default="64,1024", help="batch_max sweep, at --slo")
    p.add_argument(
        "--processes", default="2", help="`inferstream worker --processes N` configs (comma list)"
    )
    p.add_argument("--slo", type=float, default=None, help="reference latency SLO (ms)")
    p.add_argument("--batch-max", type=int, default=None, help="reference batch_max")
    p.add_argument(
        "--window",
        type=float,
        default=None,
        help=f"the baselines' batching window (ms; default {WINDOW_ENV} or {DEFAULT_WINDOW_MS:g})",
    )
    p.add_argument("--only", default="", help="comma list of roles to run (e.g. reference,floor)")
    p.add_argument("--name", default="", help="results file name (default: the run id)")
    p.add_argument("--out", default="", help="write the JSON here instead of bench/results/")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the bench topics")


def execute(args: argparse.Namespace) -> int:
    from bench import report
    from bench.run import new_plan, plan_targets, run
    from bench.targets import Target
    from bench.window import window_ms
    from pipeline.config import Settings

    settings = Settings.from_env()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    reference = Target(
        "inferstream",
        "reference",
        latency_slo_ms=args.slo if args.slo is not None else settings.latency_slo_ms,
        batch_max=args.batch_max if args.batch_max is not None else settings.batch_max,
        window_ms=args.window if args.window is not None else window_ms(),
    )
    targets = plan_targets(
        _floats(args.slos), _ints(args.batch_sizes), _ints(args.processes), args.smoke, reference
    )
    if args.only:
        roles = set(args.only.split(","))
        targets = [t for t in targets if t.role in roles]
    plan = new_plan(settings, args.events, args.rate_seconds, _floats(args.loads), args.keep_topics)
    result = run(plan, targets, log=lambda line: print(line, file=sys.stderr, flush=True))
    result["plan"]["argv"] = sys.argv[1:]
    path = report.write(result, args.name or plan.run_id, args.out or None)
    print(report.table(result))
    print(f"\nwritten: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_arguments(parser)
    return execute(parser.parse_args(argv))
