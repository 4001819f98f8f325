"""Which schema each topic of a stream family carries: the subjects a Schema Registry holds.

Confluent's TopicNameStrategy names a topic's value subject `<topic>-value`. The topic roles
are the properties of `StreamTopics`; a role added there without an entry here is reported
as unmapped (its subject is then registered by its first producer, latest version only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipeline.core.plugin import StreamPlugin
from pipeline.core.topics import drift_alerts_topic

# role (a StreamTopics property) -> the schema name its records are written with
ROLE_SCHEMAS: dict[str, Callable[[StreamPlugin], str]] = {
    "requests": lambda plugin: plugin.request_schema,
    "results": lambda plugin: plugin.result_schema,
    "provenance": lambda plugin: "provenance_record",
    # dead letters keep the original request bytes (and their request schema id)
    "dlq": lambda plugin: plugin.request_schema,
    "shadow": lambda plugin: "shadow_result",
    "events": lambda plugin: "tier_event",
}
DRIFT_ALERT_SCHEMA = "drift_alert"


def value_subject(topic: str) -> str:
    return f"{topic}-value"


@dataclass(frozen=True)
class TopicSchema:
    topic: str
    schema: str | None  # None: no schema known for this topic's role

    @property
    def subject(self) -> str:
        return value_subject(self.topic)


def topic_schemas(plugins: Iterable[StreamPlugin], namespace: str = "") -> list[TopicSchema]:
    """Every topic of the plug-ins' families and the shared drift alerts topic, with the schema
    name each carries, in `StreamTopics.topics` order."""
    out: list[TopicSchema] = []
    for plugin in plugins:
        topics = plugin.topics(namespace)
        by_topic = {
            getattr(topics, role): schema_of(plugin)
            for role, schema_of in ROLE_SCHEMAS.items()
            if isinstance(getattr(topics, role, None), str)
        }
        out += [TopicSchema(topic, by_topic.get(topic)) for topic in topics.topics]
    out.append(TopicSchema(drift_alerts_topic(namespace), DRIFT_ALERT_SCHEMA))
    return out
