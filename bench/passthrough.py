"""Baseline "Faust floor": the scoring agent's batching and delivery, with no decode and no model.

Takes micro-batches of `<stream>.requests` with the same `take_events(batch_max, within)` and
app settings as the worker, sends each record's raw key, value and headers to
`<stream>.results` and awaits delivery before the batch is acked. Run: `python -m
bench.passthrough` with the worker's INFERSTREAM_* environment.
"""

from __future__ import annotations

import asyncio
import sys

import faust

from agents.app import make_app
from pipeline.config import Settings, settings
from pipeline.logs import lifecycle_event, logging_config
from pipeline.streams import stream_spec


def build_app(cfg: Settings) -> faust.App:
    app = make_app(cfg, cfg.app_id)
    spec = stream_spec("fraud", cfg.topic_namespace)
    source = app.topic(spec.requests, key_serializer="raw", value_serializer="raw")
    sink = app.topic(spec.results, key_serializer="raw", value_serializer="raw")
    window_s = cfg.batch_window_ms / 1000

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
    app = build_app(cfg)
    sys.argv = [sys.argv[0]]
    level = cfg.log_level.upper()
    worker = Worker(app, loglevel=level, logging_config=logging_config(level), quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG so that every debug call of
    # aiokafka and faust builds a LogRecord for it: a per-message cost a floor must not pay.
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
