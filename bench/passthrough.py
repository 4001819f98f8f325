"""Baseline "Faust floor": a bare Faust app's batching and delivery, no decode and no model.

The worker no longer consumes through Faust (agents.app.make_app switches Faust's Kafka off),
so this floor builds its own Faust app with Kafka on: the aiokafka transport and the settings
the Faust worker had before the engine (raw serializers, memory store, at_least_once,
earliest, acks=-1), the rest Faust's defaults. It takes micro-batches of `<stream>.requests`
with `take_events(batch_max, within=window)` (window: BENCH_WINDOW_MS, see bench/window.py),
sends each record's raw key, value and headers to `<stream>.results` and awaits delivery
before the batch is acked. Run: `python -m bench.passthrough` with the worker's INFERSTREAM_*
environment.
"""

from __future__ import annotations

import asyncio
import sys

import faust

from bench.window import window_ms
from pipeline.config import Settings, settings
from pipeline.core.registry import stream_topics
from pipeline.logs import lifecycle_event, logging_config


def make_faust_app(cfg: Settings) -> faust.App:
    cfg.state_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
        cfg.app_id,
        broker=f"kafka://{cfg.kafka_bootstrap}",  # aiokafka, Faust's default transport
        store="memory://",
        datadir=str(cfg.state_dir / "faust"),
        key_serializer="raw",  # bytes in, bytes out: a floor decodes nothing
        value_serializer="raw",
        topic_partitions=cfg.topic_partitions,
        topic_replication_factor=cfg.topic_replication,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",  # a new group reads the waiting backlog
        producer_linger=cfg.producer_linger_ms / 1000,
        producer_acks=-1,
        web_enabled=False,
        # faust would otherwise read its own --loglevel for the banner and redirect stdout
        worker_redirect_stdouts=False,
    )


def build_app(cfg: Settings, window_s: float) -> faust.App:
    app = make_faust_app(cfg)
    spec = stream_topics("fraud", cfg.topic_namespace)
    source = app.topic(spec.requests, key_serializer="raw", value_serializer="raw")
    sink = app.topic(spec.results, key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="passthrough-fraud", concurrency=1)
    async def passthrough(stream: faust.StreamT) -> None:
        async for events in stream.take_events(cfg.batch_max, within=window_s):
            pending = [
                await sink.send(key=e.message.key, value=e.message.value, headers=e.message.headers)
                for e in events
            ]
            await asyncio.gather(*pending)

    ready = {"announced": False}

    @app.on_rebalance_complete.connect
    async def announce_ready(sender: faust.App, **kwargs: object) -> None:
        if not ready["announced"]:
            ready["announced"] = True
            lifecycle_event("ready", "passthrough ready")

    return app


def main() -> None:
    from faust.worker import Worker

    cfg = settings()
    app = build_app(cfg, window_ms() / 1000)
    sys.argv = [sys.argv[0]]
    level = cfg.log_level.upper()
    worker = Worker(app, loglevel=level, logging_config=logging_config(level), quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG so that every debug call of
    # aiokafka and faust builds a LogRecord for it: a per-message cost a floor must not pay.
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
