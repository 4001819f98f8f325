"""Assemble a worker: model, cache, scorer and agents for the requested streams on one app."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust

from agents.app import make_app
from agents.scoring import AgentStats, register_scoring_agent
from pipeline.cache import ResultCache
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.logs import lifecycle_event
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.scoring import BatchScorer
from pipeline.scoring.publisher import Publisher
from pipeline.scoring.runner import ScoringRunner
from pipeline.streams import stream_spec

log = logging.getLogger("inferstream.worker")


@dataclass
class Worker:
    app: faust.App
    stats: dict[str, AgentStats]
    runners: dict[str, ScoringRunner]


def build_worker(
    settings: Settings, streams: list[str], model_version: str | None = None, use_cache: bool = True
) -> Worker:
    app = make_app(settings, settings.app_id)
    registry = registry_from_settings(settings)
    providers = [p for p in settings.execution_providers.split(",") if p] or None
    stats: dict[str, AgentStats] = {}
    runners: dict[str, ScoringRunner] = {}
    described = []
    publisher = Publisher.from_settings(settings)  # one producer for every stream's outputs
    for name in streams:
        spec = stream_spec(name, settings.topic_namespace)
        model_dir = resolve_model_dir(settings.models_dir, spec.model_name, model_version)
        model = load_model(
            model_dir, providers=providers, intra_op_threads=settings.inference_threads
        )
        cache = ResultCache(settings.redis_url, namespace=spec.model_name) if use_cache else None
        scorer = BatchScorer(spec, model, registry, spec.features().build_features, cache=cache)
        runner = ScoringRunner(
            scorer,
            settings.model_timeout_s,
            settings.model_retries,
            deliver=publisher.publish,
        )
        runners[name] = runner
        stats[name] = register_scoring_agent(
            app, spec, runner, settings.batch_max, settings.batch_window_ms / 1000
        )
        described.append(
            {
                "stream": name,
                "model": f"{model.manifest.name}:{model.manifest.version}",
                "provider": model.provider,
            }
        )

    announce_when_assigned(app, settings, described)

    @app.timer(interval=30.0)
    async def report_stats() -> None:
        for name, s in stats.items():
            log.info(
                "stats",
                extra={
                    "event": "stats",
                    "stream": name,
                    "received": s.received,
                    "scored": s.scored,
                    "dead_lettered": s.dead_lettered,
                },
            )

    return Worker(app, stats, runners)


def announce_when_assigned(app: faust.App, settings: Settings, described: list[dict]) -> None:
    """One `ready` line once partitions are assigned: what tests and supervisors wait for."""
    ready = {"announced": False}

    @app.on_rebalance_complete.connect
    async def announce_ready(sender: faust.App, **kwargs: object) -> None:
        if not ready["announced"]:
            ready["announced"] = True
            lifecycle_event(
                "ready",
                "worker ready",
                app_id=app.conf.id,
                streams=described,
                bootstrap=settings.kafka_bootstrap,
            )


def build_drift_worker(
    settings: Settings, streams: list[str], model_version: str | None = None
) -> faust.App:
    """The drift app: its own consumer group on the request topics, alerts to drift.alerts."""
    from agents.drift import register_drift_agent
    from pipeline.drift_monitor import DriftMonitor
    from pipeline.state import RedisStateStore

    app = make_app(settings, f"{settings.app_id}-drift")
    registry = registry_from_settings(settings)
    store = RedisStateStore(settings.redis_url, prefix="inferstream:drift:")
    described = []
    for name in streams:
        spec = stream_spec(name, settings.topic_namespace)
        model = load_model(
            resolve_model_dir(settings.models_dir, spec.model_name, model_version),
            providers=["CPUExecutionProvider"],
            warmup_rows=0,
        )
        monitor = DriftMonitor(
            spec,
            model,
            registry,
            spec.features().build_features,
            store,
            calibration_cache=settings.cache_dir / "drift-calibration",
            exempt_features=spec.features().DRIFT_EXEMPT_FEATURES,
        )
        register_drift_agent(app, monitor)
        described.append(
            {
                "stream": name,
                "model": f"{model.manifest.name}:{model.manifest.version}",
                "role": "drift",
                "features": len(model.manifest.feature_names),
            }
        )
    announce_when_assigned(app, settings, described)
    return app
