"""`inferstream demo`: the whole pipeline on a live synthetic fraud stream."""

from __future__ import annotations

import argparse
import os

from pipeline.cli import CliError
from pipeline.config import settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a live fraud stream through a worker and watch it")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to produce")
    p.add_argument("--rate", type=float, default=2000.0, help="requests per second")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--drift-feature", default="amount", help="request field drifted halfway")
    p.add_argument(
        "--drift-shift",
        type=float,
        default=1.0,
        help="drift size in standard deviations (0: no drift)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.demo.run import DemoOptions, run_demo

    console = Console(stderr=False)
    cfg = settings()
    if "INFERSTREAM_KAFKA_BOOTSTRAP" not in os.environ:
        from pipeline.stack import ensure_up

        info = ensure_up(cfg, log=console.print)
        os.environ["INFERSTREAM_KAFKA_BOOTSTRAP"] = info.bootstrap  # the worker inherits these
        os.environ["INFERSTREAM_REDIS_URL"] = info.redis_url
        cfg = settings()
    options = DemoOptions(
        seconds=args.seconds,
        rate=args.rate,
        seed=args.seed,
        drift_feature=args.drift_feature,
        drift_shift=args.drift_shift,
    )
    try:
        run_demo(cfg, options, console)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    console.print(
        "the stack is still running: `inferstream stack down` stops it; "
        "`inferstream tail fraud.results` shows results"
    )
    return 0
