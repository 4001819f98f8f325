"""Putting a stream's tiers together from Settings (what pipeline/assembly.py calls).

Tiers exist only for a dense stream whose model directory has a routing.json when the worker
starts: without one the scorer keeps its single-model path, unchanged (cache included). Once a
policy is there, any change to the file is picked up without a restart (PolicyWatcher); the
first policy of a stream needs one restart.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import Settings
from pipeline.core.plugin import StreamPlugin
from pipeline.core.topics import StreamTopics
from pipeline.models.manifest import resolve_model_dir
from pipeline.scoring.model_calls import ModelCaller
from pipeline.tiers.cascade import TierRouter
from pipeline.tiers.policy import PolicyWatcher, policy_path

POLICY_CHECK_S = 1.0  # how often the policy file's mtime is looked at (on the infer thread)


def tiers_for(
    settings: Settings,
    plugin: StreamPlugin,
    topics: StreamTopics,
    model: Any,
    registry: Any,
    redis: Any = None,
) -> tuple[TierRouter | None, Any, Any]:
    """(router, shadow scorer, deliver wrapper), or (None, None, None) without a policy."""
    if (
        plugin.message_cost is not None
        or not policy_path(settings.models_dir, plugin.model_name).is_file()
    ):
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
        ModelCaller(settings.model_timeout_s, settings.model_retries),
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
        Publisher.from_settings(settings).publish,  # its own producer: never the serving one's
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


def canary_prefix(settings: Settings) -> str:
    return f"inferstream:canary:{settings.topic_namespace}"
