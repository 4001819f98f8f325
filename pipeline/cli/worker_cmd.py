"""`inferstream worker`: run the Faust worker that scores the given streams."""

from __future__ import annotations

import argparse
import sys

from pipeline.config import settings
from pipeline.streams import STREAMS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a scoring worker (Faust) for the given streams")
    p.add_argument("--streams", default="fraud", help="comma list of streams to score")
    p.add_argument("--model-version", help="model version to serve (default: latest)")
    p.add_argument("--no-cache", action="store_true", help="do not use the Redis result cache")
    p.add_argument("--log-level", help="default: INFERSTREAM_LOG_LEVEL or WARNING")
    p.set_defaults(func=run)


def parse_streams(text: str) -> list[str]:
    from pipeline.cli import CliError

    streams = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in streams if s not in STREAMS]
    if unknown or not streams:
        raise CliError(
            f"unknown stream(s) {', '.join(unknown) or text!r}; known: {', '.join(STREAMS)}"
        )
    return streams


def run_faust_app(app: object, level: str) -> None:
    """Run a Faust app as this process's worker, with our JSON logs."""
    from faust.worker import Worker

    from pipeline.logs import logging_config

    sys.argv = [sys.argv[0]]  # faust's Worker parses argv itself; ours is already parsed
    faust_worker = Worker(app, loglevel=level, logging_config=logging_config(level), quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG so that it can spin on every log
    # call: every debug line of aiokafka and faust then builds a LogRecord (4-6 % of the CPU
    # of a loaded worker). Logs are JSON on stderr here, nobody watches a spinner.
    faust_worker.spinner = None
    faust_worker.execute_from_commandline()


def run(args: argparse.Namespace) -> int:
    from agents.worker import build_worker
    from pipeline.cli import CliError
    from pipeline.models.manifest import ModelError

    cfg = settings()
    streams = parse_streams(args.streams)
    try:
        worker = build_worker(cfg, streams, args.model_version, use_cache=not args.no_cache)
    except (ModelError, KeyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    run_faust_app(worker.app, (args.log_level or cfg.log_level).upper())
    return 0
