"""`python -m bench`: arguments, then run, print the table, write JSON.

Every flag's value is checked at parse time, and a bad INFERSTREAM_* setting is caught before
any work starts: either is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench.window import DEFAULT_MS as DEFAULT_WINDOW_MS
from bench.window import ENV as WINDOW_ENV
from pipeline.cli import Parser, non_negative_float, positive_float, positive_int
from pipeline.errors import InferstreamError

PROG = "python -m bench"

SMOKE = {"events": 3000, "rate_seconds": 2.0, "loads": "0.5"}


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]




def comma_list(item: Callable[[str], object], what: str) -> Callable[[str], str]:
    """argparse type: a comma list whose every item `item` accepts; the text is kept as given."""

    def check(text: str) -> str:
        items = [x.strip() for x in text.split(",") if x.strip()]
        problem = argparse.ArgumentTypeError(f"expected a comma list of {what}, got {text!r}")
        if not items:
            raise problem
        for x in items:
            try:
                item(x)
            except argparse.ArgumentTypeError:
                raise problem from None
        return text

    return check


POSITIVE_FLOATS = comma_list(positive_float, "numbers > 0")
POSITIVE_INTS = comma_list(positive_int, "integers >= 1")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--smoke", action="store_true", help="few events: reference, floor, ceiling, drift"
    )
    p.add_argument(
        "--events", type=positive_int, default=30_000, help="flat-out backlog per config"
    )
    p.add_argument(
        "--rate-seconds",
        type=positive_float,
        default=6.0,
        help="length of each fixed-rate phase",
    )
    p.add_argument(
        "--loads",
        type=POSITIVE_FLOATS,
        default="0.25,0.5,0.9",
        help="offered loads, fractions of the reference's max",
    )
    p.add_argument(
        "--slos",
        type=POSITIVE_FLOATS,
        default="10,50",
        help="latency SLO sweep (ms), at --batch-max",
    )
    p.add_argument(
        "--batch-sizes", type=POSITIVE_INTS, default="64,1024", help="batch_max sweep, at --slo"
    )
    p.add_argument(
        "--processes",
        type=POSITIVE_INTS,
        default="2",
        help="`inferstream worker --processes N` configs (comma list)",
    )
    p.add_argument("--slo", type=positive_float, default=None, help="reference latency SLO (ms)")
    p.add_argument("--batch-max", type=positive_int, default=None, help="reference batch_max")
    p.add_argument(
        "--window",
        type=non_negative_float,
        default=None,
        help=f"the baselines' batching window (ms; default {WINDOW_ENV} or {DEFAULT_WINDOW_MS:g})",
    )
    p.add_argument("--only", default="", help="comma list of roles to run (e.g. reference,floor)")
    p.add_argument("--name", default="", help="results file name (default: the run id)")
    p.add_argument("--out", default="", help="write the JSON here instead of bench/results/")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the bench topics")


def execute(args: argparse.Namespace) -> int:
    from pipeline.config import Settings

    settings = Settings.from_env()  # a bad INFERSTREAM_* setting: SettingsError, before any work

    from bench import report
    from bench.run import new_plan, plan_targets, run
    from bench.targets import Target

    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    reference = Target(
        "inferstream",
        "reference",
        latency_slo_ms=args.slo if args.slo is not None else settings.latency_slo_ms,
        batch_max=args.batch_max if args.batch_max is not None else settings.batch_max,
        window_ms=args.window if args.window is not None else _default_window_ms(),
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


def _default_window_ms() -> float:
    from bench.window import window_ms

    try:
        return window_ms()
    except ValueError as exc:  # a bad BENCH_WINDOW_MS: a usage error like a bad flag
        raise InferstreamError(str(exc), exit_code=2) from None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse (a bad flag: one line, exit 2), then run; a user error is one line and its code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return execute(args)
    except KeyboardInterrupt:
        return 130
    except InferstreamError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
