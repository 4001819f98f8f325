"""`inferstream worker`: a Faust worker hosting the scoring engine of the given streams."""

from __future__ import annotations

import argparse
import sys

from pipeline.config import settings
from pipeline.core.registry import DEFAULT_STREAM, stream_names


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.cli import add_log_level, positive_int

    p = sub.add_parser("worker", help="run a scoring worker for the given streams")
    p.add_argument(
        "--streams",
        type=streams_arg,
        default=DEFAULT_STREAM,
        help=f"comma list of streams to score ({', '.join(stream_names())}; "
        f"default {DEFAULT_STREAM})",
    )
    p.add_argument("--model-version", help="model version to serve (default: latest)")
    p.add_argument("--no-cache", action="store_true", help="do not use the Redis result cache")
    p.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="engine processes in one consumer group under one supervisor (default 1)",
    )
    add_log_level(p)
    p.set_defaults(func=run)


def parse_streams(text: str) -> list[str]:
    """The streams of a comma list; an InferstreamError (exit 2) naming the known ones."""
    from pipeline.core.registry import parse_streams as parse

    return parse(text)


def streams_arg(text: str) -> str:
    """argparse type of --streams: the comma list, checked (unknown streams: exit 2)."""
    from pipeline.core.exceptions import UnknownStreamError

    try:
        return ",".join(parse_streams(text))
    except UnknownStreamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_faust_app(app: object, level: str) -> None:
    """Run a Faust app as this process's worker, with our JSON logs."""
    from faust.worker import Worker

    from pipeline.logs import logging_config

    sys.argv = [sys.argv[0]]  # faust's Worker parses argv itself; ours is already parsed
    faust_worker = Worker(app, loglevel=level, logging_config=logging_config(level), quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG so that it can spin on every log
    # call: every debug line then builds a LogRecord. Logs are JSON on stderr here.
    faust_worker.spinner = None
    faust_worker.execute_from_commandline()


def run_worker(args: argparse.Namespace, role: str, command: list[str]) -> int:
    """Shared by `worker` and `drift worker`: one process, or a supervisor of several."""
    from pipeline.cli import CliError

    cfg = settings()
    streams = parse_streams(args.streams)
    processes = getattr(args, "processes", 1)
    if processes < 1:  # argparse checks the flag; this guards callers that build args
        raise CliError(f"--processes must be at least 1, got {processes}", exit_code=2)
    if processes > 1:
        from agents.supervisor import Supervisor

        child = [sys.executable, "-m", "pipeline", *command, "--streams", ",".join(streams)]
        if args.model_version:
            child += ["--model-version", args.model_version]
        if getattr(args, "no_cache", False):
            child.append("--no-cache")
        if args.log_level:
            child += ["--log-level", args.log_level]
        return Supervisor(child, processes, role, streams, cfg).run()

    from agents.worker import build_worker
    from pipeline.kafka.admin import cluster_metadata
    from pipeline.kafka.exceptions import KafkaConnectFailed, KafkaUnreachable

    try:  # refused credentials or an untrusted certificate: one line now, not a retry loop
        cluster_metadata(cfg)
    except KafkaConnectFailed as exc:
        raise CliError(str(exc), exit_code=2) from None
    except KafkaUnreachable:
        pass  # no broker yet: the worker waits for one, as it waits through a broker restart

    # a missing model, a bad manifest or schema is an InferstreamError: main() prints one line
    worker = build_worker(
        cfg,
        streams,
        role=role,  # type: ignore[arg-type]
        model_version=args.model_version,
        use_cache=not getattr(args, "no_cache", False),
    )
    run_faust_app(worker.app, (args.log_level or cfg.log_level).upper())
    return 0


def run(args: argparse.Namespace) -> int:
    return run_worker(args, "score", ["worker"])
