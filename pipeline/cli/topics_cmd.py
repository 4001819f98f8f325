"""`inferstream topics ensure`: create the topic families."""

from __future__ import annotations

import argparse

from pipeline.cli import CliError
from pipeline.config import settings
from pipeline.streams import STREAMS


def register(sub: argparse._SubParsersAction) -> None:
    topics = sub.add_parser("topics", help="manage the stream topic families")
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    ensure = actions.add_parser("ensure", help="create missing topics (idempotent)")
    ensure.add_argument("--streams", default=",".join(STREAMS), help="comma list (default: all)")
    ensure.add_argument("--partitions", type=int, help="default: INFERSTREAM_TOPIC_PARTITIONS")
    ensure.add_argument("--replication", type=int, help="default: INFERSTREAM_TOPIC_REPLICATION")
    ensure.set_defaults(func=run_ensure)


def run_ensure(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from pipeline.cli.worker_cmd import parse_streams
    from pipeline.kafka.admin import ensure_topics

    cfg = settings()
    streams = parse_streams(args.streams)
    try:
        states = ensure_topics(
            cfg.kafka_bootstrap,
            streams,
            partitions=args.partitions or cfg.topic_partitions,
            replication=args.replication or cfg.topic_replication,
            namespace=cfg.topic_namespace,
        )
    except KafkaException as exc:
        raise CliError(f"cannot reach Kafka at {cfg.kafka_bootstrap}: {exc}") from None
    for state in states:
        verb = "created" if state.created else "exists "
        print(f"{verb} {state.name} ({state.partitions} partitions)")
    return 0
