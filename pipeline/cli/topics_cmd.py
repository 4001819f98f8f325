"""`inferstream topics ensure`: create the topic families."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import CliError
from pipeline.codec.registry import Registered
from pipeline.config import Settings, settings
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
    # registry mode: every subject registered (or refused) before a topic is created
    registered = _register_schemas(cfg, streams) if cfg.schema_registry_url else []
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
    for entry in registered:
        ids = ", ".join(f"v{version}={schema_id}" for version, schema_id in entry.ids)
        print(f"schema  {entry.subject} ({ids})")
    for state in states:
        if state.short:
            print(
                f"inferstream: warning: {state.name} has {state.partitions} partition(s), "
                f"fewer than the configured {state.wanted_partitions}; "
                "`inferstream topics ensure --add-partitions` adds them",
                file=sys.stderr,
            )
    return 0


def _register_schemas(cfg: Settings, streams: list[str]) -> list[Registered]:
    """Register each topic's schema history under `<topic>-value` at the Schema Registry."""
    from pipeline.codec import registry_from_settings
    from pipeline.codec.errors import UnknownSchemaError
    from pipeline.codec.registry import ConfluentRegistry, register_subjects
    from pipeline.codec.subjects import topic_schemas
    from pipeline.core.registry import get_plugin

    registry = registry_from_settings(cfg)
    assert isinstance(registry, ConfluentRegistry)  # schema_registry_url is set
    registry.warn = lambda message: print(f"inferstream: warning: {message}", file=sys.stderr)
    registry.check()  # down: one line (RegistryUnavailable), before any work
    subjects = []
    for entry in topic_schemas([get_plugin(name) for name in streams], cfg.topic_namespace):
        known = entry.schema is not None
        if known:
            try:
                registry.catalog.versions(entry.schema)
            except UnknownSchemaError:
                known = False
        if known:
            subjects.append((entry.subject, entry.schema))
        else:
            print(
                f"inferstream: note: no schema known for {entry.topic}; its subject is "
                "registered by its first producer",
                file=sys.stderr,
            )
    return register_subjects(registry, subjects)
