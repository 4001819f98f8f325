"""A worker process: a Faust app hosting one engine per stream, for scoring or drift.

Each engine's handler is put together by `pipeline.assembly.assemble` (the one assembly of a
stream's model, cache, publisher and handler); this module adds Faust's lifecycle and timers.
`inferstream worker` and `inferstream drift worker` both use `build_worker`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust

from agents.app import make_app
from agents.engine_service import EngineService
from pipeline.assembly import Role, assemble, engine_config, group_id, redis_client
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.engine import Engine, EngineConfig
from pipeline.logs import lifecycle_event

log = logging.getLogger("inferstream.worker")


@dataclass
class Worker:
    app: faust.App
    role: Role
    engines: dict[str, Engine] = field(default_factory=dict)
    handlers: dict[str, Any] = field(default_factory=dict)
    metrics: Any = None  # pipeline.metrics.ProcessMetrics, unless INFERSTREAM_METRICS=off
    metrics_url: str | None = None


def build_worker(
    settings: Settings,
    streams: list[str],
    role: Role = "score",
    model_version: str | None = None,
    use_cache: bool = True,
) -> Worker:
    """A Faust app hosting one engine per stream (pipeline/assembly.py builds each)."""
    app = make_app(settings, group_id(settings, role))
    worker = Worker(app, role)
    registry = registry_from_settings(settings)
    redis = redis_client(settings)  # one client per process: cache, request ids, detector state
    described = []
    for name in streams:
        built = assemble(settings, name, role, model_version, use_cache, registry, redis)
        worker.engines[name] = Engine(built.config, built.handler)
        worker.handlers[name] = built.handler
        described.append(built.about)
        if role == "score" and getattr(built.plugin, "job_field", None):
            # a stream with jobs: its job tracker runs here too, in a group of its own
            tracker_name = f"{name}:jobs"
            tracker, config = job_tracker(settings, name, registry, redis)
            worker.engines[tracker_name] = Engine(config, tracker)
            worker.handlers[tracker_name] = tracker
    _add_metrics(worker, settings, streams, redis)
    _announce_when_assigned(worker, settings, described)
    for engine in worker.engines.values():
        app.add_dependency(EngineService(engine, loop=app.loop, beacon=app.beacon))
    _add_timers(worker)
    return worker


def job_tracker(
    settings: Settings, stream: str, registry: Any, redis: Any
) -> tuple[Any, EngineConfig]:
    """The job tracker of `stream` (pipeline/jobs/tracker.py) and its engine's config: it
    reads the stream's results, provenance and dead letters in group `<ns><app id>-jobs`."""
    from dataclasses import replace

    from pipeline.codec import AvroDeserializer
    from pipeline.core.registry import get_plugin
    from pipeline.jobs.rebuild import rebuild_job
    from pipeline.jobs.tracker import JobTracker
    from pipeline.redis.jobs import JobStore

    topics = get_plugin(stream).topics(settings.topic_namespace)
    store = JobStore(redis, settings.topic_namespace)

    def rebuild(job_id: str) -> object:
        return rebuild_job(settings, store, topics, registry, job_id)

    tracker = JobTracker(stream, topics, store, AvroDeserializer(registry), rebuild)
    config = engine_config(
        settings, tracker.name, f"{group_id(settings, 'score')}-jobs", topics.results
    )
    return tracker, replace(config, topics=tracker.input_topics)


def _add_metrics(worker: Worker, settings: Settings, streams: list[str], redis: Any) -> None:
    """/metrics + /ui for this process (pipeline/metrics), every engine and handler observed."""
    if settings.metrics == "off":
        return
    from pipeline.metrics import ProcessMetrics

    metrics = ProcessMetrics(settings, worker.role, streams)
    for name, engine in worker.engines.items():
        metrics.attach(name, engine, worker.handlers[name])
    metrics.watch_redis(redis)
    worker.metrics = metrics
    worker.metrics_url = metrics.serve()


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
            if worker.metrics is not None:
                worker.metrics.set_ready()
            lifecycle_event(
                "ready",
                "worker ready",
                metrics=worker.metrics_url,
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
