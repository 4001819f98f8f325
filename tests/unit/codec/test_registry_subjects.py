"""Which schema each topic carries (the `<topic>-value` subjects topics ensure registers)."""

from __future__ import annotations

from pipeline.codec.registry import registry_from_settings
from pipeline.codec.subjects import topic_schemas, value_subject
from pipeline.config import Settings
from pipeline.core.registry import get_plugin, stream_names
from pipeline.core.topics import drift_alerts_topic


def test_every_topic_of_every_family_and_the_alerts_topic_has_a_known_schema() -> None:
    plugins = [get_plugin(name) for name in stream_names()]
    entries = topic_schemas(plugins, "ns.")
    expected_topics = [t for p in plugins for t in p.topics("ns.").topics]
    assert [e.topic for e in entries] == [*expected_topics, drift_alerts_topic("ns.")]
    catalog = registry_from_settings(Settings()).catalog  # type: ignore[attr-defined]
    unmapped = [e.topic for e in entries if e.schema is None]
    assert unmapped == [], "a StreamTopics role without a schema in ROLE_SCHEMAS"
    for entry in entries:
        assert catalog.versions(entry.schema), entry  # raises for a schema not in schemas/


def test_roles_map_to_the_schemas_their_writers_use() -> None:
    fraud = get_plugin("fraud")
    topics = fraud.topics("")
    by_topic = {e.topic: e.schema for e in topic_schemas([fraud])}
    assert by_topic[topics.requests] == fraud.request_schema
    assert by_topic[topics.dlq] == fraud.request_schema  # dead letters keep the original bytes
    assert by_topic[topics.results] == fraud.result_schema
    assert by_topic[topics.provenance] == "provenance_record"
    assert by_topic[drift_alerts_topic("")] == "drift_alert"


def test_subjects_follow_the_topic_name_strategy() -> None:
    assert value_subject("staging.fraud.requests") == "staging.fraud.requests-value"
    entry = topic_schemas([get_plugin("fraud")], "a.")[0]
    assert entry.subject == f"{entry.topic}-value"
