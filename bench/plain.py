"""Baseline "Python ceiling": a synchronous confluent-kafka loop around the same BatchScorer.

consume up to batch_max (or what arrives within the window, BENCH_WINDOW_MS: bench/window.py)
-> prepare -> infer -> publishable -> produce every output -> flush (delivered) -> commit.
Same outputs, the same producer settings as the worker's publisher and the same at-least-once
rule as the engine; no Faust, no event loop, no pipelining of stages. Run: `python -m
bench.plain` with the worker's INFERSTREAM_* environment.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Message, Producer

from bench.window import window_ms
from pipeline.codec import registry_from_settings
from pipeline.config import settings
from pipeline.core.topics import stream_spec
from pipeline.engine import inbound_message
from pipeline.kafka.client_config import client_config
from pipeline.kafka.publisher import producer_config
from pipeline.logs import lifecycle_event
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.scoring import BatchScorer
from pipeline.scoring.scorer import now_ms
from pipeline.streams.fraud.features import build_features


def main() -> None:
    cfg = settings()
    spec = stream_spec("fraud", cfg.topic_namespace)
    providers = [p for p in cfg.execution_providers.split(",") if p] or None
    model = load_model(
        resolve_model_dir(cfg.models_dir, spec.model_name, None),
        providers=providers,
        intra_op_threads=cfg.inference_threads,
    )
    scorer = BatchScorer(spec, model, registry_from_settings(cfg), build_features)
    consumer = Consumer(
        {
            **client_config(cfg),
            "group.id": cfg.app_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    # the publisher's settings (idempotent, acks=all, murmur2_random, linger): a ceiling that
    # produced more cheaply than the worker may would not be the worker's ceiling
    failed: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:  # delivery.report.only.error: only failures come here
            failed.append(error)

    producer = Producer({**producer_config(cfg), "on_delivery": on_delivery})
    announced = False

    def on_assign(consumer: Consumer, partitions: list) -> None:
        nonlocal announced
        if not announced:
            announced = True
            lifecycle_event("ready", "plain loop ready")

    consumer.subscribe([spec.requests], on_assign=on_assign)
    window_s = window_ms() / 1000
    while True:
        batch = consumer.consume(num_messages=cfg.batch_max, timeout=window_s)
        messages = [inbound_message(m) for m in batch if m.error() is None]
        if not messages:
            continue
        prepared = scorer.prepare(messages)
        started_ms, started = now_ms(), time.perf_counter()
        scores = scorer.infer(prepared)
        inference_ms = (time.perf_counter() - started) * 1000
        scored = scorer.publishable(prepared, scores, started_ms, inference_ms)
        for out in scored.outbound:
            while True:
                try:
                    producer.produce(out.topic, out.value, out.key, headers=out.headers)
                    break
                except BufferError:
                    producer.poll(0.01)
        if producer.flush(30) or failed:
            raise SystemExit(f"outputs not delivered ({failed[:1]}); exiting before the commit")
        consumer.commit(asynchronous=True)


if __name__ == "__main__":
    main()
