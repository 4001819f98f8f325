"""Building a stream's engine from Settings + the plug-in registry + the adapters: one place.

`assemble` is what the Faust worker (agents/worker.py), the drift worker and the benchmark's
plain loop all call, so a scoring or drift handler is put together the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pipeline.codec import SchemaRegistry, registry_from_settings
from pipeline.config import Settings
from pipeline.core.handler import BatchHandler
from pipeline.core.plugin import StreamPlugin
from pipeline.core.registry import get_plugin
from pipeline.core.topics import StreamTopics
from pipeline.engine.config import EngineConfig
from pipeline.kafka.client_config import client_config
from pipeline.kafka.publisher import Publisher
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import LoadedModel, load_model
from pipeline.redis.client import DegradingRedis

Role = Literal["score", "drift"]
# a token stream's engine window: this many model-call budgets, so that sorting the window by
# length has rows to choose from, yet a window stays a few seconds of model time
WINDOW_BUDGETS = 4


@dataclass
class Assembled:
    plugin: StreamPlugin
    topics: StreamTopics
    model: LoadedModel
    handler: BatchHandler
    config: EngineConfig
    about: dict[str, Any]  # for the worker's `ready` line


def group_id(settings: Settings, role: Role) -> str:
    """The consumer group: prefixed by the topic namespace, so namespaces never share groups."""
    base = f"{settings.topic_namespace}{settings.app_id}"
    return base if role == "score" else f"{base}-drift"


def redis_client(settings: Settings) -> DegradingRedis:
    return DegradingRedis(
        settings.redis_url, settings.redis_retry_after_s, settings.redis_timeout_ms / 1000
    )


def assemble(
    settings: Settings,
    stream: str,
    role: Role = "score",
    model_version: str | None = None,
    use_cache: bool = True,
    registry: SchemaRegistry | None = None,
    redis: DegradingRedis | None = None,
) -> Assembled:
    plugin = get_plugin(stream)
    topics = plugin.topics(settings.topic_namespace)
    registry = registry or registry_from_settings(settings)
    redis = redis or redis_client(settings)
    if role == "score":
        if model_version is None:  # a routing policy names the primary (pipeline/tiers)
            model_version = _policy_primary(settings, plugin)
        model = load_stream_model(settings, plugin, model_version)
        handler = _scoring(settings, plugin, topics, model, registry, redis, use_cache)
        about = {"model": _model_label(model), "provider": model.provider}
    else:
        model_dir = resolve_model_dir(settings.models_dir, plugin.model_name, model_version)
        model, handler = _drift(settings, plugin, topics, model_dir, registry, redis)
        about = {
            "model": _model_label(model),
            "role": "drift",
            "features": len(model.manifest.feature_names),
        }
    config = engine_config(settings, handler.name, group_id(settings, role), topics.requests)
    if plugin.message_cost is not None and role == "score":
        config = replace(
            config,
            event_cost=plugin.message_cost,
            batch_max_cost=WINDOW_BUDGETS * settings.max_batch_tokens,
        )
    return Assembled(plugin, topics, model, handler, config, {"stream": stream, **about})


def engine_config(settings: Settings, name: str, group: str, topic: str) -> EngineConfig:
    return EngineConfig(
        name=name,
        group_id=group,
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


def load_stream_model(
    settings: Settings, plugin: StreamPlugin, version: str | None = None
) -> LoadedModel:
    """The stream's model at `version` (None: the latest), on the configured providers."""
    return load_model(
        resolve_model_dir(settings.models_dir, plugin.model_name, version),
        providers=list(settings.execution_providers) or None,
        intra_op_threads=settings.inference_threads,
    )


def _policy_primary(settings: Settings, plugin: StreamPlugin) -> str | None:
    from pipeline.tiers.policy import load_policy

    policy = load_policy(settings.models_dir, plugin.model_name, plugin.preprocessing_version)
    return policy.primary if policy else None


def _tiers(
    settings: Settings, plugin: StreamPlugin, topics: StreamTopics, model: LoadedModel,
    registry: SchemaRegistry, redis: DegradingRedis, breakers: Any,
) -> tuple[Any, Any, Any]:  # fmt: skip
    """(router, shadow, deliver wrapper) for a dense stream (the router watches for its
    routing.json, so a first policy needs no restart); Nones for token streams."""
    from pipeline.tiers.wiring import tiers_for

    return tiers_for(settings, plugin, topics, model, registry, redis, breakers)


def _model_label(model: LoadedModel) -> str:
    return f"{model.manifest.name}:{model.manifest.version}"


def _scoring(
    settings: Settings,
    plugin: StreamPlugin,
    topics: StreamTopics,
    model: LoadedModel,
    registry: SchemaRegistry,
    redis: DegradingRedis,
    use_cache: bool,
) -> BatchHandler:
    from pipeline.redis.cache import ResultCache
    from pipeline.redis.request_ids import RequestIdRegistry
    from pipeline.scoring.handler import ScoringHandler
    from pipeline.scoring.model_calls import ModelBreakers
    from pipeline.scoring.provenance import RequestCosts
    from pipeline.scoring.scorer import BatchScorer

    cache = (
        ResultCache(settings.redis_url, f"{topics.prefix}:{plugin.model_name}", redis=redis)
        if use_cache
        else None
    )
    request_ids = (
        RequestIdRegistry(redis, topics.prefix, settings.request_id_window_s)
        if settings.request_id_window_s
        else None
    )
    admission = None
    if plugin.job_field:
        from pipeline.redis.jobs import JobAdmission

        admission = JobAdmission(redis, settings.topic_namespace)
    # one breaker per model version, shared by the handler's and the router's model calls
    breakers = ModelBreakers(settings.model_breaker_failures, settings.model_breaker_reset_s)
    router, shadow, wrap_deliver = _tiers(
        settings, plugin, topics, model, registry, redis, breakers
    )
    scorer = BatchScorer(
        plugin,
        topics,
        model,
        registry,
        cache=cache,
        request_ids=request_ids,
        admission=admission,
        max_batch_tokens=settings.max_batch_tokens,
        router=router,
        shadow=shadow,
        costs=RequestCosts.from_settings(settings),
    )
    publisher = Publisher.from_settings(settings)  # one per engine: its flush is its batch's
    deliver = wrap_deliver(publisher.publish) if wrap_deliver else publisher.publish
    return ScoringHandler(
        scorer, deliver, settings.model_timeout_s, settings.model_retries, breakers=breakers
    )


def _drift(
    settings: Settings,
    plugin: StreamPlugin,
    topics: StreamTopics,
    model_dir: Any,
    registry: SchemaRegistry,
    redis: DegradingRedis,
) -> tuple[LoadedModel, BatchHandler]:
    from pipeline.drift.handler import DriftHandler
    from pipeline.drift.monitor import DriftMonitor
    from pipeline.redis.state import RedisStateStore

    model = load_model(model_dir, providers=["CPUExecutionProvider"], warmup_rows=0)
    monitor = DriftMonitor(
        plugin,
        topics,
        model,
        registry,
        RedisStateStore(settings.redis_url, prefix="inferstream:drift:", redis=redis),
        calibration_cache=settings.cache_dir / "drift-calibration",
    )
    return model, DriftHandler(monitor, Publisher.from_settings(settings).publish)
