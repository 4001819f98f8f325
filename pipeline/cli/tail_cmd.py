"""`inferstream tail <topic>`: decoded records as JSON lines on stdout."""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

import orjson

from pipeline.cli import CliError
from pipeline.config import settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tail", help="print a topic's records as JSON lines")
    p.add_argument("topic")
    p.add_argument("--max", type=int, help="stop after N records")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without records (default: 10 with --max "
        "or --from-beginning, else follow forever)",
    )
    p.add_argument(
        "--meta",
        action="store_true",
        help="wrap each value with topic, partition, offset, timestamp, key, headers",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from pipeline.codec import registry_from_settings
    from pipeline.kafka.reader import read_topic

    cfg = settings()
    idle = args.idle_timeout
    if idle is None and (args.max is not None or args.from_beginning):
        idle = 10.0
    out = sys.stdout.buffer
    try:
        for record in read_topic(
            cfg.kafka_bootstrap,
            args.topic,
            registry_from_settings(cfg),
            start="beginning" if args.from_beginning else "end",
            max_records=args.max,
            idle_timeout=idle,
        ):
            out.write(orjson.dumps(render(record, args.meta)) + b"\n")
    except LookupError as exc:
        raise CliError(str(exc)) from None
    except KafkaException as exc:
        raise CliError(f"cannot read from Kafka at {cfg.kafka_bootstrap}: {exc}") from None
    except BrokenPipeError:  # `| head` closed the pipe: that is a normal way to stop
        return 0
    out.flush()
    return 0


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def render(record: Any, meta: bool) -> dict[str, Any]:
    """The decoded value; records that do not decode (dead letters) always come with metadata."""
    if record.value is not None and not meta:
        return record.value
    rendered = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": _text(record.key),
        "headers": {k: _text(v) for k, v in record.headers.items()},
    }
    if record.value is not None:
        rendered["value"] = record.value
    else:
        rendered["value_base64"] = base64.b64encode(record.raw or b"").decode()
        rendered["decode_error"] = str(record.error)
    return rendered
