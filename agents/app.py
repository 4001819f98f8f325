"""The Faust app of a worker process: lifecycle, signal handling and timers, without Kafka.

The hot consume path is not Faust's: each stream's engine (pipeline/engine) owns a
confluent-kafka consumer on its own thread and runs as a service of this app. Faust's own
Kafka consumer and producer are switched off, so the app joins no consumer group and fetches
nothing (its per-event consume path cost 4-5x the CPU of a batch consumer, see bench/README.md).
"""

from __future__ import annotations

import faust

from pipeline.config import Settings


def make_app(settings: Settings, app_id: str) -> faust.App:
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",  # never connected: Kafka is off below
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        web_enabled=False,
        # faust would otherwise read its own --loglevel for the banner and redirect stdout
        worker_redirect_stdouts=False,
    )
    app.boot_strategy = app.BootStrategy(app, enable_kafka=False)
    return app
