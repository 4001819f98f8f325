"""`inferstream topics ensure`: create the topic families."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import CliError
from pipeline.config import settings
from pipeline.core.registry import stream_names


def register(sub: argparse._SubParsersAction) -> None:
    topics = sub.add_parser("topics", help="manage the stream topic families")
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    ensure = actions.add_parser("ensure", help="create missing topics (idempotent)")
    ensure.add_argument(
        "--streams", default=",".join(stream_names()), help="comma list (default: all)"
    )
    ensure.add_argument("--partitions", type=int, help="default: INFERSTREAM_TOPIC_PARTITIONS")
    ensure.add_argument("--replication", type=int, help="default: INFERSTREAM_TOPIC_REPLICATION")
    ensure.add_argument(
        "--add-partitions",
        action="store_true",
        help="give existing topics with fewer partitions than configured the missing ones "
        "(keys then map to other partitions: per-key order holds only for new records)",
    )
    ensure.set_defaults(func=run_ensure)


def run_ensure(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from pipeline.cli.worker_cmd import parse_streams
    from pipeline.kafka.admin import ensure_topics
    from pipeline.kafka.exceptions import KafkaUnreachable, TopicConfigError

    cfg = settings()
    streams = parse_streams(args.streams)
    partitions = cfg.topic_partitions if args.partitions is None else args.partitions
    replication = cfg.topic_replication if args.replication is None else args.replication
    if partitions < 1:
        raise CliError(f"--partitions must be >= 1 (got {partitions})", exit_code=2)
    if replication < 1:
        raise CliError(f"--replication must be >= 1 (got {replication})", exit_code=2)
    try:
        states = ensure_topics(
            cfg.kafka_bootstrap,
            streams,
            partitions=partitions,
            replication=replication,
            namespace=cfg.topic_namespace,
            add_partitions=args.add_partitions,
        )
    except KafkaUnreachable as exc:
        raise CliError(str(exc)) from None
    except TopicConfigError as exc:
        raise CliError(str(exc)) from None
    except KafkaException as exc:
        raise CliError(f"topics ensure failed at {cfg.kafka_bootstrap}: {exc}") from None
    for state in states:
        verb = "created" if state.created else "added  " if state.added else "exists "
        print(f"{verb} {state.name} ({state.partitions} partitions)")
    for state in states:
        if state.short:
            print(
                f"inferstream: warning: {state.name} has {state.partitions} partition(s), "
                f"fewer than the configured {state.wanted_partitions}; "
                "`inferstream topics ensure --add-partitions` adds them",
                file=sys.stderr,
            )
    return 0
