"""What the metrics instrumentation costs per event, measured without the broker's noise.

The real scoring path of one engine (BatchScorer + ScoringHandler with the fraud model from
models/, Avro decode, features, ONNX, result/provenance encode) and the engine's own hooks
(EngineObserver.batch_cut / batch_delivered, ScoringObserver via the handler), on the calling
thread, batch after batch, metrics off vs on, alternating. What is timed is this thread's CPU
time (time.thread_time), not wall time, so other processes' load counts less (on the shared
2-core machine pairs still spread by +-20 %: use medians of many rounds). One mode at a time
runs under callgrind (`--mode on|off --batches N`), but as measured here the set-up's count
varied by ~200 M instructions between processes (PYTHONHASHSEED and OPENBLAS_NUM_THREADS fixed),
more than 40 batches of 256 differ by, so differences of two N did not settle the question:

    python -m bench.metrics_overhead --batch 256 --batches 200 --rounds 6
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.on python -m bench.metrics_overhead \
        --mode on --batches 40 --rounds 1

Not measured here (the same with metrics on or off, or outside this thread): the Kafka
consumer, the publisher's delivery and the stage threads' hand-offs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from pipeline.codec import AvroSerializer, SchemaCatalog
from pipeline.codec.registry import LocalRegistry
from pipeline.config import REPO_ROOT
from pipeline.core.batch import Batch
from pipeline.core.messages import InboundMessage
from pipeline.core.registry import get_plugin, stream_topics
from pipeline.metrics.families import new_registry
from pipeline.metrics.observer import EngineObserver, ScoringObserver
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.scoring import BatchScorer
from pipeline.scoring.handler import ScoringHandler
from pipeline.streams.fraud.generator import TransactionGenerator


def _messages(batch: int, seed: int) -> list[InboundMessage]:
    registry = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
    spec = stream_topics("fraud")
    encode = AvroSerializer(registry, registry.catalog.latest("fraud_request"), spec.requests)
    records = TransactionGenerator(seed=seed).generate(batch).records
    for i, r in enumerate(records):
        r["tenant"] = f"tenant-{i % 12}"  # more tenants than labels: the `other` path too
    stamp = time.time_ns() // 1_000_000
    return [
        InboundMessage(spec.requests, i % 6, i, stamp, r["card_id"].encode(), encode(r),
                       [("request_id", r["request_id"].encode())])
        for i, r in enumerate(records)
    ]  # fmt: skip


class Harness:
    def __init__(self, batch: int) -> None:
        plugin = get_plugin("fraud")
        model = load_model(resolve_model_dir(REPO_ROOT / "models", "fraud", None))
        registry = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
        scorer = BatchScorer(plugin, stream_topics("fraud"), model, registry, worker_id="b")
        self.handler = ScoringHandler(scorer, lambda outbound: None, 5.0, 0)
        _, families = new_registry()
        self.engine_observer = EngineObserver(families, "fraud")
        self.scoring_observer = ScoringObserver(families, "fraud", tenant_field="tenant")
        self.messages = _messages(batch, 7)
        self.seq = 0

    def run(self, batches: int, on: bool) -> float:
        """Thread CPU seconds of `batches` batches, instrumented or not."""
        self.handler.observer = self.scoring_observer if on else None
        observer = self.engine_observer if on else None
        handler, messages = self.handler, self.messages
        started = time.thread_time()
        for _ in range(batches):
            self.seq += 1
            now = time.monotonic()
            batch = Batch(self.seq, messages, "full", 1.0, now, {})
            if observer is not None:
                observer.batch_cut(batch, [(len(messages), now - 0.001)])
            handler.handle(batch)
            batch.stage_s["deliver"] = 0.0001
            if observer is not None:
                observer.batch_delivered(batch)
        return time.thread_time() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batch", type=int, default=256, help="events per batch")
    parser.add_argument("--batches", type=int, default=200, help="batches per measurement")
    parser.add_argument("--rounds", type=int, default=6, help="off/on pairs, alternating")
    parser.add_argument("--mode", choices=("both", "on", "off"), default="both")
    args = parser.parse_args(argv)
    harness = Harness(args.batch)
    harness.run(5, True)  # warm-up: first-use allocations, label children
    harness.run(5, False)
    off: list[float] = []
    on: list[float] = []
    for i in range(args.rounds):
        for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
            if args.mode in ("both", mode):
                (on if mode == "on" else off).append(harness.run(args.batches, mode == "on"))
    events = args.batch * args.batches
    result: dict[str, Any] = {
        "batch": args.batch,
        "batches": args.batches,
        "rounds": args.rounds,
        "loadavg_1m": os.getloadavg()[0],
    }
    for name, runs in (("off", off), ("on", on)):
        if runs:
            result[f"cpu_us_per_event_{name}"] = [round(r / events * 1e6, 3) for r in runs]
    if off and on:
        ratios = [b / a for a, b in zip(off, on, strict=True)]
        result["on_over_off_per_pair"] = [round(r, 4) for r in ratios]
        result["on_over_off_median"] = round(statistics.median(ratios), 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
