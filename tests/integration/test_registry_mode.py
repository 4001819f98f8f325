"""The scoring, drift and replay integration tests once more, in registry mode.

The tests imported below run here a second time with INFERSTREAM_SCHEMA_REGISTRY_URL set in
their `env` (so in the worker subprocesses and, through the `settings` fixture, in this
process): every record they write and read carries an id the real Schema Registry issued.
A representative subset, not the whole modules: the suite's time budget is tight.
"""

from __future__ import annotations

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.codec.registry import ConfluentRegistry, registry_from_settings
from pipeline.core.topics import drift_alerts_topic
from pipeline.streams.fraud.generator import DriftSpec
from tests.integration.helpers import read_all
from tests.integration.test_drift_stream import AMOUNT_FEATURES, run_stream
from tests.integration.test_replay import (  # noqa: F401 (`served` is a fixture)
    served,
    test_replaying_what_was_served_with_its_version_agrees_exactly,
)
from tests.integration.test_scoring import (
    test_every_request_gets_one_result_and_one_provenance_record,
    test_malformed_messages_go_to_the_dlq_and_the_rest_is_scored,
)

pytestmark = [pytest.mark.integration, pytest.mark.registry]

__all__ = [
    "test_every_request_gets_one_result_and_one_provenance_record",
    "test_malformed_messages_go_to_the_dlq_and_the_rest_is_scored",
    "test_replaying_what_was_served_with_its_version_agrees_exactly",
]


@pytest.fixture
def env(env: dict[str, str], schema_registry: str) -> dict[str, str]:
    """The integration tests' env (conftest.py), in registry mode."""
    return {**env, "INFERSTREAM_SCHEMA_REGISTRY_URL": schema_registry}


def test_the_settings_are_in_registry_mode(settings) -> None:
    """Guards the rest of this module: without it, a broken override re-runs local mode."""
    assert isinstance(registry_from_settings(settings), ConfluentRegistry)


def test_drift_alerts_in_registry_mode_are_read_by_confluents_deserializer(
    settings, env, schema_registry: str
) -> None:
    alerts = run_stream(settings, env, DriftSpec(after=1000, feature="amount", shift=1.0))
    opened = [a for a in alerts if a["state"] == "OPEN"]
    assert opened and opened[0]["feature"] in AMOUNT_FEATURES

    topic = drift_alerts_topic(settings.topic_namespace)
    raw = [r.raw for r in read_all(settings, topic, expected=len(alerts), idle_timeout=3)]
    decode = AvroDeserializer(SchemaRegistryClient({"url": schema_registry}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    decoded = [decode(value, ctx) for value in raw]
    assert [a["feature"] for a in decoded] == [a["feature"] for a in alerts]
    assert decoded[0]["state"] == alerts[0]["state"]
