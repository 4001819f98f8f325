"""`inferstream produce <stream>`: synthetic or file-based requests onto `<stream>.requests`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli import CliError
from pipeline.config import settings
from pipeline.core.plugin import DriftInjection, GeneratorOption, StreamPlugin
from pipeline.core.registry import get_plugin, stream_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce",
        help="send requests to <stream>.requests",
        description="Send synthetic requests (--count) or JSON lines (--file) to a stream.",
    )
    p.add_argument("stream", choices=stream_names())
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--count", type=int, help="number of synthetic requests")
    source.add_argument("--file", type=Path, help="JSON-lines file, one request per line")
    p.add_argument(
        "--rate", type=float, default=None, help="requests per second (default: flat out)"
    )
    p.add_argument("--seed", type=int, default=0, help="generator seed (reproducible streams)")
    for option, streams in _generator_options().items():
        p.add_argument(
            f"--{option.name}",
            type=float,
            default=None,
            help=f"{option.help} ({', '.join(streams)}; default {option.default:g}, "
            f"{option.low:g} .. {option.high:g})",
        )
    p.add_argument(
        "--on-error",
        choices=("abort", "skip"),
        default="abort",
        help="--file: abort sends nothing if any line is bad; skip sends the good ones",
    )
    drift = p.add_argument_group("drift injection (synthetic only)")
    drift.add_argument("--drift-after", type=int, help="inject drift after this many requests")
    drift.add_argument(
        "--drift-feature", help="request field to drift (default: the stream's first driftable)"
    )
    drift.add_argument("--drift-shift", type=float, help="mean shift in sds (default: 0)")
    drift.add_argument("--drift-scale", type=float, help="spread multiplier (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _generator_options() -> dict[GeneratorOption, list[str]]:
    """Every registered stream's generator options, each with the streams that take it."""
    found: dict[GeneratorOption, list[str]] = {}
    for name in stream_names():
        for option in get_plugin(name).generator_options:
            found.setdefault(option, []).append(name)
    return found


def generator_values(plugin: StreamPlugin, args: argparse.Namespace) -> dict[str, float]:
    """The generator options given, checked against `plugin`'s (another stream's: exit 2)."""
    own = {option.dest: option for option in plugin.generator_options}
    values: dict[str, float] = {}
    for option in _generator_options():
        value = getattr(args, option.dest, None)
        if value is None:
            continue
        if option.dest not in own:
            raise CliError(f"--{option.name} is not an option of stream {plugin.name}", 2)
        try:
            values[option.dest] = option.check(value)
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
    return values


def drift_injection(plugin: StreamPlugin, args: argparse.Namespace) -> DriftInjection | None:
    if args.drift_after is None:
        return None
    return DriftInjection(
        after=args.drift_after,
        feature=args.drift_feature or plugin.driftable_fields[0],
        shift=0.0 if args.drift_shift is None else args.drift_shift,
        scale=1.0 if args.drift_scale is None else args.drift_scale,
    )


def validate(args: argparse.Namespace) -> None:
    """Flag values out of range: one line naming the range, exit 2."""
    plugin = get_plugin(args.stream)

    def bad(message: str) -> CliError:
        return CliError(message, 2)

    if args.rate is not None and not 0 < args.rate < float("inf"):
        raise bad(
            f"--rate must be > 0 requests per second (got {args.rate:g}); omit it for flat out"
        )
    if args.count is not None and args.count < 1:
        raise bad(f"--count must be >= 1 (got {args.count})")
    if args.count is not None and plugin.generator is None:
        raise bad(f"stream {plugin.name} has no synthetic generator; use --file")
    generator_values(plugin, args)
    drift_given = [
        flag
        for flag, value in (
            ("--drift-feature", args.drift_feature),
            ("--drift-shift", args.drift_shift),
            ("--drift-scale", args.drift_scale),
        )
        if value is not None
    ]
    if args.drift_after is None:
        if drift_given:
            raise bad(f"{drift_given[0]} needs --drift-after (when the drift starts)")
        return
    if args.file is not None:
        raise bad("--drift-after is for synthetic requests (--count), not --file")
    if args.drift_after < 0:
        raise bad(f"--drift-after must be >= 0 (got {args.drift_after})")
    driftable = plugin.driftable_fields
    if not driftable:
        raise bad(f"stream {plugin.name} has no driftable fields")
    feature = args.drift_feature or driftable[0]
    if feature not in driftable:
        raise bad(f"--drift-feature must be one of {', '.join(driftable)} (got {feature!r})")
    if args.drift_shift is not None and not abs(args.drift_shift) < float("inf"):
        raise bad(f"--drift-shift must be a finite number (got {args.drift_shift})")
    if args.drift_scale is not None and not 0 < args.drift_scale < float("inf"):
        raise bad(f"--drift-scale must be > 0 (got {args.drift_scale:g})")


def require_topic(bootstrap: str, topic: str) -> None:
    """KafkaUnreachable (as a CliError) fast, or a CliError when `topic` does not exist."""
    from pipeline.kafka.admin import cluster_metadata
    from pipeline.kafka.exceptions import KafkaUnreachable

    try:
        topics = cluster_metadata(bootstrap).topics
    except KafkaUnreachable as exc:
        raise CliError(str(exc)) from None
    if topic not in topics:
        raise CliError(f"topic {topic} does not exist; run `inferstream topics ensure`")


def run(args: argparse.Namespace) -> int:
    validate(args)
    cfg = settings()
    plugin = get_plugin(args.stream)
    spec = plugin.topics(cfg.topic_namespace)
    if args.file is not None:
        records = _records_from_file(args, cfg, plugin)
        total = len(records)
        batches: Any = iter([records])
    else:
        total = args.count
        batches = _synthetic_batches(args, plugin)
    from pipeline.kafka.exceptions import DeliveryFailed
    from pipeline.kafka.producer import RequestProducer

    require_topic(cfg.kafka_bootstrap, spec.requests)
    # a file's lines were checked field by field above; synthetic records are the generator's
    producer = RequestProducer(cfg, spec, check_records=False)
    sent = _send_paced(producer, batches, total, args.rate or 0.0, show=not args.quiet)
    try:
        producer.flush()
    except DeliveryFailed as exc:
        raise CliError(f"{exc}; is Kafka up at {cfg.kafka_bootstrap}?") from None
    print(f"sent {sent} requests to {spec.requests}", file=sys.stderr)
    return 0


def _records_from_file(args: argparse.Namespace, cfg: Any, plugin: StreamPlugin) -> list[dict]:
    from pipeline.cli.request_files import load_jsonl
    from pipeline.codec import registry_from_settings

    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    catalog = registry_from_settings(cfg).catalog  # type: ignore[attr-defined]
    schema = catalog.latest(plugin.request_schema)
    # the worker's own checks too, so what it would dead-letter is a bad line here
    records, errors = load_jsonl(args.file, schema, plugin.preprocess)
    for error in errors:
        print(f"{args.file}:{error.line}: {error.reason}", file=sys.stderr)
    if errors and args.on_error == "abort":
        raise CliError(
            f"{len(errors)} bad line(s) in {args.file}; nothing sent "
            "(--on-error skip sends the rest)"
        )
    if errors:
        print(f"skipping {len(errors)} bad line(s)", file=sys.stderr)
    return records


def _synthetic_batches(args: argparse.Namespace, plugin: StreamPlugin) -> Any:
    assert plugin.generator is not None  # validate() checked
    try:
        generator = plugin.generator(
            args.seed, drift_injection(plugin, args), generator_values(plugin, args)
        )
    except ValueError as exc:  # the generator's own limits
        raise CliError(str(exc), 2) from None

    def batches() -> Any:  # the generator is built above, so its errors come before any send
        remaining = args.count
        while remaining > 0:
            n = min(remaining, 2000)
            remaining -= n
            yield generator.generate(n)

    return batches()


def _send_paced(producer: Any, batches: Any, total: int, rate: float, show: bool) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show or total < 1000,
        transient=True,
    )
    sent, started = 0, time.monotonic()
    chunk = max(1, min(500, int(rate / 20))) if rate > 0 else 500
    with progress:
        task = progress.add_task("producing", total=total)
        for batch in batches:
            for start in range(0, len(batch), chunk):
                part = batch[start : start + chunk]
                producer.send_many(part)
                sent += len(part)
                progress.update(task, completed=sent)
                if rate > 0:  # pace in small chunks so the offered rate is smooth
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
    return sent
