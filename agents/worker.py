"""Assemble a worker process: a Faust app hosting one engine per stream, for scoring or drift.

`build_worker` is the one place where Settings, the stream registry, models, the cache and the
publisher are put together; `inferstream worker` and `inferstream drift worker` both use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import faust

from agents.app import make_app
from agents.engine_service import EngineService
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.topics import StreamSpec, stream_spec
from pipeline.engine import BatchHandler, Engine, EngineConfig
from pipeline.kafka.client_config import client_config
from pipeline.kafka.publisher import Publisher
from pipeline.logs import lifecycle_event
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.redis.cache import ResultCache
from pipeline.redis.client import DegradingRedis
from pipeline.redis.request_ids import RequestIdRegistry
from pipeline.scoring import BatchScorer
from pipeline.scoring.handler import ScoringHandler

log = logging.getLogger("inferstream.worker")

Role = Literal["score", "drift"]


@dataclass
class Worker:
    app: faust.App
    role: Role
    engines: dict[str, Engine] = field(default_factory=dict)
    handlers: dict[str, Any] = field(default_factory=dict)


def engine_config(settings: Settings, name: str, group_id: str, topic: str) -> EngineConfig:
    return EngineConfig(
        name=name,
        group_id=group_id,
        topics=(topic,),
        consumer=client_config(settings),
        batch_max=settings.batch_max,
        latency_objective_s=settings.latency_slo_ms / 1000,
        commit_interval_s=settings.commit_interval_s,
        stall_s=settings.engine_stall_s,
        drain_timeout_s=settings.publish_timeout_s
        + settings.model_timeout_s * (1 + settings.model_retries),
        prefetch_kbytes=settings.consumer_prefetch_kbytes,
        extra=group_membership(settings, name),
    )


def group_membership(settings: Settings, engine_name: str) -> dict[str, object]:
    session_ms = settings.consumer_session_timeout_ms
    extra: dict[str, object] = {
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(100, min(3000, session_ms // 3)),
    }
    if settings.group_instance_id:  # one per engine: a process may run several streams
        extra["group.instance.id"] = f"{settings.group_instance_id}-{engine_name}"
    return extra


def build_worker(
    settings: Settings,
    streams: list[str],
    role: Role = "score",
    model_version: str | None = None,
    use_cache: bool = True,
) -> Worker:
    suffix = "" if role == "score" else "-drift"
    group_id = f"{settings.app_id}{suffix}"
    app = make_app(settings, group_id)
    worker = Worker(app, role)
    registry = registry_from_settings(settings)
    described = []
    for name in streams:
        spec = stream_spec(name, settings.topic_namespace)
        model_dir = resolve_model_dir(settings.models_dir, spec.model_name, model_version)
        if role == "score":
            handler, about = _scoring_handler(settings, spec, model_dir, registry, use_cache)
        else:
            handler, about = _drift_handler(settings, spec, model_dir, registry)
        config = engine_config(settings, handler.name, group_id, spec.requests)
        engine = Engine(config, handler)
        worker.engines[name] = engine
        worker.handlers[name] = handler
        described.append({"stream": name, **about})
    _announce_when_assigned(worker, settings, described)
    for engine in worker.engines.values():
        app.add_dependency(EngineService(engine, loop=app.loop, beacon=app.beacon))
    _add_timers(worker)
    return worker


def _scoring_handler(
    settings: Settings, spec: StreamSpec, model_dir: Any, registry: Any, use_cache: bool
) -> tuple[BatchHandler, dict[str, Any]]:
    providers = [p for p in settings.execution_providers.split(",") if p] or None
    model = load_model(model_dir, providers=providers, intra_op_threads=settings.inference_threads)
    redis = DegradingRedis(
        settings.redis_url, settings.redis_retry_after_s, settings.redis_timeout_ms / 1000
    )
    cache = ResultCache(settings.redis_url, spec.model_name, redis=redis) if use_cache else None
    request_ids = (
        RequestIdRegistry(redis, spec.prefix, settings.request_id_window_s)
        if settings.request_id_window_s
        else None
    )
    scorer = BatchScorer(
        spec,
        model,
        registry,
        spec.features().build_features,
        cache=cache,
        request_ids=request_ids,
    )
    publisher = Publisher.from_settings(settings)  # one per engine: its flush is its batch's
    handler = ScoringHandler(
        scorer, publisher.publish, settings.model_timeout_s, settings.model_retries
    )
    about = {"model": f"{model.manifest.name}:{model.manifest.version}", "provider": model.provider}
    return handler, about


def _drift_handler(
    settings: Settings, spec: StreamSpec, model_dir: Any, registry: Any
) -> tuple[BatchHandler, dict[str, Any]]:
    from pipeline.drift.handler import DriftHandler
    from pipeline.drift.monitor import DriftMonitor
    from pipeline.redis.state import RedisStateStore

    model = load_model(model_dir, providers=["CPUExecutionProvider"], warmup_rows=0)
    monitor = DriftMonitor(
        spec,
        model,
        registry,
        spec.features().build_features,
        RedisStateStore(settings.redis_url, prefix="inferstream:drift:"),
        calibration_cache=settings.cache_dir / "drift-calibration",
        exempt_features=spec.features().DRIFT_EXEMPT_FEATURES,
    )
    handler = DriftHandler(monitor, Publisher.from_settings(settings).publish)
    about = {
        "model": f"{model.manifest.name}:{model.manifest.version}",
        "role": "drift",
        "features": len(model.manifest.feature_names),
    }
    return handler, about


def _announce_when_assigned(worker: Worker, settings: Settings, described: list[dict]) -> None:
    """One `ready` line once every engine has its first assignment: what supervisors wait for."""
    lock = threading.Lock()
    waiting = set(worker.engines)

    def ready(name: str) -> Callable[[Engine], None]:
        def on_ready(engine: Engine) -> None:
            with lock:
                waiting.discard(name)
                if waiting:
                    return
            lifecycle_event(
                "ready",
                "worker ready",
                group=engine.config.group_id,
                role=worker.role,
                streams=described,
                bootstrap=settings.kafka_bootstrap,
            )

        return on_ready

    for name, engine in worker.engines.items():
        engine.on_ready = ready(name)


def _add_timers(worker: Worker) -> None:
    app = worker.app

    @app.timer(interval=30.0)
    async def report_stats() -> None:
        for name, engine in worker.engines.items():
            stats = engine.stats
            handler_stats = getattr(worker.handlers[name], "stats", None)
            log.info(
                "stats",
                extra={
                    "event": "stats",
                    "stream": name,
                    "role": worker.role,
                    "batches": stats.batches,
                    "events": stats.events,
                    "cuts": dict(stats.cuts),
                    "pauses": stats.pauses,
                    **(vars(handler_stats) if handler_stats is not None else {}),
                },
            )

    if worker.role == "drift":

        @app.timer(interval=1.0)
        async def checkpoint_quiet_streams() -> None:
            loop = app.loop
            for handler in worker.handlers.values():
                await loop.run_in_executor(None, handler.checkpoint_if_due)
