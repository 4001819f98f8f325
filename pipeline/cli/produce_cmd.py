"""`inferstream produce <stream>`: synthetic or file-based requests onto `<stream>.requests`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli import CliError
from pipeline.config import settings
from pipeline.core.topics import STREAMS, stream_spec

DEFAULT_DRIFT_FEATURE = "amount"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce",
        help="send requests to <stream>.requests",
        description="Send synthetic requests (--count) or JSON lines (--file) to a stream.",
    )
    p.add_argument("stream", choices=sorted(STREAMS))
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--count", type=int, help="number of synthetic requests")
    source.add_argument("--file", type=Path, help="JSON-lines file, one request per line")
    p.add_argument(
        "--rate", type=float, default=None, help="requests per second (default: flat out)"
    )
    p.add_argument("--seed", type=int, default=0, help="generator seed (reproducible streams)")
    p.add_argument("--fraud-share", type=float, default=0.02, help="share of fraudulent events")
    p.add_argument(
        "--on-error",
        choices=("abort", "skip"),
        default="abort",
        help="--file: abort sends nothing if any line is bad; skip sends the good ones",
    )
    drift = p.add_argument_group("drift injection (synthetic only)")
    drift.add_argument("--drift-after", type=int, help="inject drift after this many requests")
    drift.add_argument(
        "--drift-feature", help=f"request field to drift (default: {DEFAULT_DRIFT_FEATURE})"
    )
    drift.add_argument("--drift-shift", type=float, help="mean shift in sds (default: 0)")
    drift.add_argument("--drift-scale", type=float, help="spread multiplier (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def validate(args: argparse.Namespace) -> None:
    """Flag values out of range: one line naming the range, exit 2."""
    from pipeline.streams.fraud.generator import DRIFTABLE_FIELDS

    def bad(message: str) -> CliError:
        return CliError(message, 2)

    if args.rate is not None and not 0 < args.rate < float("inf"):
        raise bad(
            f"--rate must be > 0 requests per second (got {args.rate:g}); omit it for flat out"
        )
    if args.count is not None and args.count < 1:
        raise bad(f"--count must be >= 1 (got {args.count})")
    if not 0.0 <= args.fraud_share <= 1.0:
        raise bad(f"--fraud-share must be in [0, 1] (got {args.fraud_share:g})")
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
    feature = args.drift_feature or DEFAULT_DRIFT_FEATURE
    if feature not in DRIFTABLE_FIELDS:
        raise bad(f"--drift-feature must be one of {', '.join(DRIFTABLE_FIELDS)} (got {feature!r})")
    if args.drift_shift is not None and not abs(args.drift_shift) < float("inf"):
        raise bad(f"--drift-shift must be a finite number (got {args.drift_shift})")
    if args.drift_scale is not None and not 0 < args.drift_scale < float("inf"):
        raise bad(f"--drift-scale must be > 0 (got {args.drift_scale:g})")


def require_topic(bootstrap: str, topic: str) -> None:
    """KafkaUnreachable (as a CliError) fast, or a CliError when `topic` does not exist."""
    from pipeline.kafka.admin import KafkaUnreachable, cluster_metadata

    try:
        topics = cluster_metadata(bootstrap).topics
    except KafkaUnreachable as exc:
        raise CliError(str(exc)) from None
    if topic not in topics:
        raise CliError(f"topic {topic} does not exist; run `inferstream topics ensure`")


def run(args: argparse.Namespace) -> int:
    validate(args)
    cfg = settings()
    spec = stream_spec(args.stream, cfg.topic_namespace)
    if args.file is not None:
        records = _records_from_file(args, cfg, spec)
        total = len(records)
        batches: Any = iter([records])
    else:
        total = args.count
        batches = _synthetic_batches(args)
    from pipeline.kafka.producer import DeliveryFailed, RequestProducer

    require_topic(cfg.kafka_bootstrap, spec.requests)
    producer = RequestProducer(cfg, spec)
    sent = _send_paced(producer, batches, total, args.rate or 0.0, show=not args.quiet)
    try:
        producer.flush()
    except DeliveryFailed as exc:
        raise CliError(f"{exc}; is Kafka up at {cfg.kafka_bootstrap}?") from None
    print(f"sent {sent} requests to {spec.requests}", file=sys.stderr)
    return 0


def _records_from_file(args: argparse.Namespace, cfg: Any, spec: Any) -> list[dict]:
    from pipeline.cli.request_files import load_jsonl
    from pipeline.codec import SchemaCatalog

    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    schema = SchemaCatalog(cfg.schemas_dir).latest(spec.request_schema)
    # the worker's own checks too, so what it would dead-letter is a bad line here
    records, errors = load_jsonl(args.file, schema, spec.features().build_features)
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


def _synthetic_batches(args: argparse.Namespace) -> Any:
    from pipeline.streams.fraud.generator import DriftSpec, TransactionGenerator

    try:
        drift = None
        if args.drift_after is not None:
            drift = DriftSpec(
                after=args.drift_after,
                feature=args.drift_feature or DEFAULT_DRIFT_FEATURE,
                shift=0.0 if args.drift_shift is None else args.drift_shift,
                scale=1.0 if args.drift_scale is None else args.drift_scale,
            )
        generator = TransactionGenerator(seed=args.seed, fraud_share=args.fraud_share, drift=drift)
    except ValueError as exc:  # the generator's own limits (e.g. fraud_share)
        raise CliError(str(exc), 2) from None

    def batches() -> Any:  # the generator is built above, so its errors come before any send
        remaining = args.count
        while remaining > 0:
            n = min(remaining, 2000)
            remaining -= n
            yield generator.generate(n).records

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
