"""`inferstream demo`: the whole pipeline on a live synthetic stream (the default stream)."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable

from pipeline.cli import CliError
from pipeline.config import Settings, settings

DEFAULT_RATE = 2000.0  # pipeline.demo.run.DEFAULT_RATE (not imported here: it pulls in Kafka)


def register(sub: argparse._SubParsersAction) -> None:
    from pipeline.core.registry import DEFAULT_STREAM, get_plugin

    default = get_plugin(DEFAULT_STREAM)
    p = sub.add_parser(
        "demo", help=f"run a live {DEFAULT_STREAM} stream through a worker and watch it"
    )
    # flags are checked by pipeline.demo.run.parse_options, so a bad one is one line, exit 2
    p.add_argument("--seconds", default="60", help="how long to produce (default 60)")
    p.add_argument(
        "--rate", default=f"{DEFAULT_RATE:.0f}", help="requests per second (default 2000)"
    )
    p.add_argument("--seed", default="7", help="generator seed (an integer)")
    p.add_argument(
        "--drift-feature",
        default=None,
        help=f"request field drifted halfway: {', '.join(default.driftable_fields)} "
        "(default: the first)",
    )
    p.add_argument(
        "--drift-shift",
        default="1.0",
        help="drift size in standard deviations (0: no drift)",
    )
    p.set_defaults(func=run)


def ensure_stack(cfg: Settings, log: Callable[[str], None]) -> None:
    """Kafka and Redis answer at the configured addresses: local ones (loopback) that do not
    are started there; an external one that does not answer is a CliError saying what to do."""
    from pipeline.stack import StackError, ensure_up
    from pipeline.stack.kafka import broker_answers, parse_bootstrap
    from pipeline.stack.process import is_loopback, port_open
    from pipeline.stack.redis import parse_redis_url, redis_answers

    local = []
    host, port = parse_bootstrap(cfg.kafka_bootstrap)
    if is_loopback(host):
        local.append("kafka")
    elif not (port_open(host, port, timeout=3.0) and broker_answers(cfg.kafka_bootstrap, 3.0)):
        raise CliError(
            f"Kafka at {cfg.kafka_bootstrap} does not answer and is not on this machine, so the "
            "demo cannot start it: start that broker, or unset INFERSTREAM_KAFKA_BOOTSTRAP to "
            "use the local stack"
        )
    host, port = parse_redis_url(cfg.redis_url)
    if is_loopback(host):
        local.append("redis")
    elif not redis_answers(cfg.redis_url, 3.0):
        raise CliError(
            f"Redis at {cfg.redis_url} does not answer and is not on this machine, so the demo "
            "cannot start it: start that server, or unset INFERSTREAM_REDIS_URL to use the "
            "local stack"
        )
    if local:
        try:
            ensure_up(cfg, log=log, services=local)
        except StackError as exc:
            raise CliError(str(exc)) from None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, taking the same cleanup path as Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.demo.metrics import DemoStats
    from pipeline.demo.run import demo_environment, parse_options, run_demo

    try:
        options = parse_options(
            args.seconds, args.rate, args.seed, args.drift_feature, args.drift_shift
        )
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    console = Console(stderr=False)
    stats = DemoStats()
    try:
        demo_environment(os.environ)  # the workers inherit these
        cfg = settings()
        ensure_stack(cfg, console.print)
        os.environ["INFERSTREAM_KAFKA_BOOTSTRAP"] = cfg.kafka_bootstrap
        os.environ["INFERSTREAM_REDIS_URL"] = cfg.redis_url
        stats, _ = run_demo(cfg, options, console, stats)
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        console.print()
        console.print(
            f"produced {stats.produced.total:,}, scored {stats.results.total:,}, "
            f"dead letters {stats.dead_letters:,} before it stopped",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"demo {what}: its worker and drift worker were stopped")
        return 143 if isinstance(exc, _Terminated) else 130
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    ns = cfg.topic_namespace
    if not stats.complete:
        raise CliError(
            f"the demo did not score everything it produced ({stats.lag:,} of "
            f"{stats.produced.total:,} requests unanswered"
            + (f"; producing failed: {stats.produce_error}" if stats.produce_error else "")
            + "): see the summary above; a lower --rate may help"
        )
    console.print(
        "the stack is still running: `inferstream stack down` stops it; "
        f"`inferstream tail {ns}{options.stream}.results` shows results; "
        f"`{f'INFERSTREAM_TOPIC_NAMESPACE={ns} ' if ns else ''}inferstream replay "
        f"{options.stream} --from -10m "
        "--html replay.html` replays the run and compares it with what was served",
        highlight=False,
        soft_wrap=True,
    )
    return 0
