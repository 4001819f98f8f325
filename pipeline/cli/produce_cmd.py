"""`inferstream produce <stream>`: synthetic or file-based requests onto `<stream>.requests`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli import CliError
from pipeline.config import settings
from pipeline.streams import STREAMS, stream_spec


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
    p.add_argument("--rate", type=float, default=0.0, help="requests per second (0: flat out)")
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
    drift.add_argument("--drift-feature", default="amount", help="numeric request field to drift")
    drift.add_argument("--drift-shift", type=float, default=0.0, help="mean shift in sds")
    drift.add_argument("--drift-scale", type=float, default=1.0, help="spread multiplier")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = settings()
    spec = stream_spec(args.stream, cfg.topic_namespace)
    if args.file is not None:
        records = _records_from_file(args, cfg, spec.request_schema)
        total = len(records)
        batches: Any = iter([records])
    else:
        if args.count <= 0:
            raise CliError("--count must be positive")
        total = args.count
        batches = _synthetic_batches(args)
    from pipeline.kafka.producer import DeliveryFailed, RequestProducer

    producer = RequestProducer(cfg, spec)
    sent = _send_paced(producer, batches, total, args.rate, show=not args.quiet)
    try:
        producer.flush()
    except DeliveryFailed as exc:
        raise CliError(f"{exc}; is Kafka up at {cfg.kafka_bootstrap}?") from None
    print(f"sent {sent} requests to {spec.requests}", file=sys.stderr)
    return 0


def _records_from_file(args: argparse.Namespace, cfg: Any, schema_name: str) -> list[dict]:
    from pipeline.codec import SchemaCatalog
    from pipeline.request_files import load_jsonl

    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    schema = SchemaCatalog(cfg.schemas_dir).latest(schema_name)
    records, errors = load_jsonl(args.file, schema)
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
    from pipeline.fraud.generator import DriftSpec, TransactionGenerator

    drift = None
    if args.drift_after is not None:
        drift = DriftSpec(
            after=args.drift_after,
            feature=args.drift_feature,
            shift=args.drift_shift,
            scale=args.drift_scale,
        )
    generator = TransactionGenerator(seed=args.seed, fraud_share=args.fraud_share, drift=drift)
    remaining = args.count
    while remaining > 0:
        n = min(remaining, 2000)
        remaining -= n
        yield generator.generate(n).records


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
