"""Baseline "Python ceiling": a synchronous confluent-kafka loop around the same handler.

consume up to batch_max (or what arrives within the window, BENCH_WINDOW_MS: bench/window.py)
-> prepare -> infer -> encode -> deliver (flushed) -> commit, all on one thread. The handler
is built by the worker's own assembly (pipeline/assembly.py), so outputs, producer settings
and the at-least-once rule are the engine's; no Faust, no event loop, no pipelining. Run: `python -m
bench.plain` with the worker's INFERSTREAM_* environment.
"""

from __future__ import annotations

import itertools
import time

from confluent_kafka import Consumer

from bench.window import window_ms
from pipeline.assembly import assemble
from pipeline.config import settings
from pipeline.core.batch import Batch
from pipeline.kafka.messages import inbound_message
from pipeline.logs import lifecycle_event


def main() -> None:
    cfg = settings()
    # the worker's own assembly (model, request-id rule, publisher, handler); --no-cache like
    # the engine worker it is compared with
    built = assemble(cfg, "fraud", use_cache=False)
    handler = built.handler
    consumer = Consumer(
        {
            **built.config.consumer,
            "group.id": built.config.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    announced = False

    def on_assign(consumer: Consumer, partitions: list) -> None:
        nonlocal announced
        if not announced:
            announced = True
            lifecycle_event("ready", "plain loop ready")

    consumer.subscribe(list(built.config.topics), on_assign=on_assign)
    window_s = window_ms() / 1000
    seq = itertools.count(1)
    while True:
        polled = consumer.consume(num_messages=cfg.batch_max, timeout=window_s)
        messages = [inbound_message(m) for m in polled if m.error() is None]
        if not messages:
            continue
        # prepare -> infer -> encode -> deliver (flushed, acks=all) on this one thread
        handler.handle(Batch(next(seq), messages, "full", 0.0, time.monotonic(), {}))
        consumer.commit(asynchronous=True)


if __name__ == "__main__":
    main()
