"""Putting a stream's tiers together from Settings (what pipeline/assembly.py calls).

Every dense stream gets a router, with or without a routing.json: without one it serves the
worker's model exactly as the single-model path does (same cache keys and values, the same
provenance), and it watches for the file, so a stream's first policy (and any later change,
or its removal) is taken without a restart (PolicyWatcher, checked at most once a second).
A token stream (documents: several rows per request, token budgets) keeps its one model.
The shadow scorer's producer is made on its first shadow batch: a stream that never shadows
has no second producer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pipeline.config import Settings
from pipeline.core.plugin import StreamPlugin
from pipeline.core.topics import StreamTopics
from pipeline.models.manifest import resolve_model_dir
from pipeline.scoring.model_calls import ModelCaller
from pipeline.tiers.cascade import TierRouter
from pipeline.tiers.policy import PolicyWatcher

POLICY_CHECK_S = 1.0  # how often the policy file's mtime is looked at (on the infer thread)


def tiers_for(
    settings: Settings,
    plugin: StreamPlugin,
    topics: StreamTopics,
    model: Any,
    registry: Any,
    redis: Any = None,
    breakers: Any = None,  # pipeline.scoring.model_calls.ModelBreakers, the handler's too
) -> tuple[TierRouter | None, Any, Any]:
    """(router, shadow scorer, deliver wrapper), or (None, None, None) without a policy."""
    if plugin.message_cost is not None or model.manifest.input.kind != "dense":
        return None, None, None
    from pipeline.models.runtime import load_model

    def load(version: str) -> Any:
        return load_model(
            resolve_model_dir(settings.models_dir, plugin.model_name, version),
            providers=list(settings.execution_providers) or None,
            intra_op_threads=settings.inference_threads,
        )

    from pipeline.scoring.scorer import default_worker_id
    from pipeline.tiers.canary import Canary, CanaryStore

    store = CanaryStore(redis, canary_prefix(settings)) if redis is not None else None
    events = tier_events(registry, topics, default_worker_id())
    router = TierRouter(
        model,
        load,
        plugin.head,
        ModelCaller(settings.model_timeout_s, settings.model_retries, breakers=breakers),
        lambda on_change: PolicyWatcher(
            settings.models_dir,
            plugin.model_name,
            plugin.preprocessing_version,
            POLICY_CHECK_S,
            on_change,
        ),
        canary=Canary(plugin.name, store, events=events),
    )
    from pipeline.codec.columns import ColumnEncoder
    from pipeline.kafka.publisher import Publisher
    from pipeline.tiers.shadow import ShadowScorer, after_delivery

    def shadow_versions() -> tuple[str, ...]:
        policy = router.policy
        return policy.shadow if policy else ()

    shadow = ShadowScorer(
        shadow_versions,
        router.tier,
        ColumnEncoder(registry, registry.catalog.latest("shadow_result"), topics.shadow),
        topics.shadow,
        lazy_publish(lambda: Publisher.from_settings(settings)),  # never the serving producer
        plugin.model_name,
        plugin.key_field,
    )

    def deliver_wrapper(deliver: Any) -> Any:
        # canary events go out with the batch being delivered, through the worker's publisher
        return after_delivery(events.with_events(deliver))

    return router, shadow, deliver_wrapper


def tier_events(registry: Any, topics: StreamTopics, worker: str) -> Any:
    """The TierEvents of a stream: tier_event records on `<stream>.events`."""
    from pipeline.codec import AvroSerializer
    from pipeline.tiers.events import TierEvents

    schema = registry.catalog.latest("tier_event")
    return TierEvents(AvroSerializer(registry, schema, topics.events), topics.events, worker)


def lazy_publish(make: Callable[[], Any]) -> Callable[[Sequence[Any]], None]:
    """`publish` of a publisher made on the first call (only the shadow thread calls it)."""
    made: list[Any] = []

    def publish(messages: Sequence[Any]) -> None:
        if not made:
            made.append(make())
        made[0].publish(messages)

    return publish


def canary_prefix(settings: Settings) -> str:
    return f"inferstream:canary:{settings.topic_namespace}"
