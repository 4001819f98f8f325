"""The Faust app, configured from Settings; every agent is registered on it here."""

from __future__ import annotations

import faust

from agents.transport import FetchTunedTransport
from pipeline.config import Settings


def make_app(settings: Settings, app_id: str = "inferstream") -> faust.App:
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        app_id,
        broker=f"{settings.faust_transport}://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        # bytes in, bytes out: our Avro codec runs in the scorer's thread, not in Faust
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",  # exactly_once has open upstream bugs
        consumer_auto_offset_reset="earliest",  # a new group scores what is already waiting
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        broker_commit_interval=settings.broker_commit_interval_s,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_acks=-1,
        web_enabled=False,
        # faust would otherwise read its own --loglevel for the banner and redirect stdout
        worker_redirect_stdouts=False,
    )
    if settings.faust_transport == "kafka":
        # before anything asks for app.transport (app.topic() does)
        app.transport = FetchTunedTransport(
            app.conf.broker_consumer,
            app,
            fetch_min_bytes=settings.consumer_fetch_min_bytes,
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        )
    return app
