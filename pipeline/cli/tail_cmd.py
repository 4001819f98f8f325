"""`inferstream tail <topic>`: decoded records as JSON lines on stdout."""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Iterable
from typing import Any

import orjson

from pipeline.cli import CliError
from pipeline.config import settings

DLQ_HEADER_PREFIX = "dlq."  # pipeline.scoring.dead_letters.HEADER_PREFIX


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tail", help="print a topic's records as JSON lines")
    p.add_argument("topic")
    p.add_argument("--max", type=int, help="stop after N records")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--last", type=int, metavar="N", help="print the newest N records and exit")
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


def _validate(args: argparse.Namespace) -> None:
    if args.max is not None and args.max < 1:
        raise CliError(f"--max must be >= 1 (got {args.max})", exit_code=2)
    if args.last is not None and args.last < 1:
        raise CliError(f"--last must be >= 1 (got {args.last})", exit_code=2)
    if args.idle_timeout is not None and not args.idle_timeout > 0:
        raise CliError(f"--idle-timeout must be > 0 seconds (got {args.idle_timeout:g})", 2)
    if args.last is not None and (args.from_beginning or args.max is not None):
        raise CliError("--last cannot be combined with --from-beginning or --max", exit_code=2)


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from pipeline.codec import registry_from_settings
    from pipeline.kafka.exceptions import KafkaUnreachable, TopicNotFound
    from pipeline.kafka.reader import read_last, read_topic

    _validate(args)
    cfg = settings()
    idle = args.idle_timeout
    if idle is None and (args.max is not None or args.from_beginning):
        idle = 10.0
    out = sys.stdout.buffer
    state = {"count": 0}

    def on_idle(quiet: float) -> None:
        until = f"; stopping after {idle:g} s" if idle is not None else "; Ctrl-C to stop"
        print(
            f"inferstream: tail: no new records on {args.topic} for {quiet:.0f} s{until}",
            file=sys.stderr,
            flush=True,
        )

    try:
        records: Iterable[Any]
        if args.last is not None:
            records = read_last(
                cfg.kafka_bootstrap,
                args.topic,
                registry_from_settings(cfg),
                args.last,
                idle_timeout=idle or 10.0,
            )
        else:
            records = read_topic(
                cfg.kafka_bootstrap,
                args.topic,
                registry_from_settings(cfg),
                start="beginning" if args.from_beginning else "end",
                max_records=args.max,
                idle_timeout=idle,
                on_idle=on_idle,
                idle_notice_s=5.0 if idle is None else min(5.0, idle / 2),
            )
        for record in records:
            out.write(orjson.dumps(render(record, args.meta)) + b"\n")
            state["count"] += 1
    except KafkaUnreachable as exc:
        raise CliError(str(exc)) from None
    except TopicNotFound as exc:
        suggestion = suggest_topic(args.topic, cfg.topic_namespace)
        if suggestion:
            raise CliError(
                f"topic {args.topic!r} does not exist; did you mean {suggestion}?", exit_code=2
            ) from None
        raise CliError(f"{exc}; `inferstream topics ensure` creates the stream topics") from None
    except KafkaException as exc:
        raise CliError(f"cannot read from Kafka at {cfg.kafka_bootstrap}: {exc}") from None
    except BrokenPipeError:  # `| head` closed the pipe: that is a normal way to stop
        return 0
    out.flush()
    if args.last is None and args.max is not None and state["count"] < args.max:
        print(
            f"inferstream: tail: stopped after {state['count']} of {args.max} record(s): "
            f"none for {idle:g} s",
            file=sys.stderr,
        )
    return 0


def suggest_topic(given: str, namespace: str = "") -> str | None:
    """The stream topics `given` most likely meant (`results` -> `<a>.results or
    <b>.results`), or None."""
    from pipeline.core.registry import stream_names
    from pipeline.kafka.admin import topic_names

    candidates = sorted(
        name
        for name in topic_names(stream_names(), namespace)
        if name != given and (name == f"{namespace}{given}" or name.endswith(f".{given}"))
    )
    return " or ".join(candidates) if 0 < len(candidates) <= 3 else None


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def render(record: Any, meta: bool) -> dict[str, Any]:
    """The decoded value; records that do not decode (dead letters) always come with metadata.

    Dead letters (records with a `dlq.reason` header) show why they were rejected even without
    `meta`: stage, reason, detail and where the original came from, next to the value.
    """
    headers = record.headers or {}
    if not meta and f"{DLQ_HEADER_PREFIX}reason" in headers:
        return _render_dead_letter(record, headers)
    if record.value is not None and not meta:
        return record.value
    rendered = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": _text(record.key),
        "headers": {k: _text(v) for k, v in headers.items()},
    }
    _add_value(rendered, record)
    return rendered


def _render_dead_letter(record: Any, headers: dict[str, bytes]) -> dict[str, Any]:
    def header(name: str) -> str | None:
        return _text(headers.get(f"{DLQ_HEADER_PREFIX}{name}"))

    rendered: dict[str, Any] = {
        "dlq.stage": header("stage"),
        "dlq.reason": header("reason"),
        "dlq.detail": header("detail"),
    }
    source = header("source.topic")
    if source is not None:
        rendered["dlq.source"] = f"{source}[{header('source.partition')}]@{header('source.offset')}"
    _add_value(rendered, record)
    return rendered


def _add_value(rendered: dict[str, Any], record: Any) -> None:
    if record.value is not None:
        rendered["value"] = record.value
    else:
        rendered["value_base64"] = base64.b64encode(record.raw or b"").decode()
        rendered["decode_error"] = str(record.error)
