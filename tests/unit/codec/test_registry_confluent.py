"""ConfluentRegistry's decisions with an in-process stand-in for the registry's HTTP client:
history registered in order, refusals verbatim, a registry that is down, the fallback to the
local ids of schemas/ and the compatibility NONE warning. The real registry is in
tests/integration/test_registry.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipeline.codec.errors import DecodeError
from pipeline.codec.registry import (
    ConfluentRegistry,
    RegistryUnavailable,
    SchemaRejected,
    local_schema_id,
)
from pipeline.codec.schemas import SchemaCatalog
from pipeline.config import REPO_ROOT
from pipeline.errors import SettingsError

CATALOG = SchemaCatalog(REPO_ROOT / "schemas")
URL = "http://user:hunter2@127.0.0.1:18081/apis/ccompat/v7"


class FakeClient:
    """What ConfluentRegistry asks of confluent-kafka's SchemaRegistryClient."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.ids: dict[str, int] = {}  # schema text -> id (the same id in every subject)
        self.registered: list[tuple[str, dict]] = []
        self.lookups: list[int] = []
        self.compatibility = "BACKWARD"
        self.reject: str | None = None  # a refusal's message
        self.down = False

    def register_schema(self, subject: str, schema: Any) -> int:
        if self.down:
            raise ConnectionError("[Errno 111] Connection refused")
        if self.reject is not None:
            raise SchemaRegistryError(409, 409, self.reject)
        self.registered.append((subject, json.loads(schema.schema_str)))
        if schema.schema_str not in self.ids:
            self.ids[schema.schema_str] = len(self.ids) + 1
            self.by_id[self.ids[schema.schema_str]] = schema.schema_str
        return self.ids[schema.schema_str]

    def get_schema(self, schema_id: int) -> Any:
        self.lookups.append(schema_id)
        if self.down:
            raise ConnectionError("[Errno 111] Connection refused")
        if schema_id not in self.by_id:
            raise SchemaRegistryError(404, 40403, f"Schema {schema_id} not found.")
        return type("Found", (), {"schema_str": self.by_id[schema_id]})()

    def get_compatibility(self, subject: str) -> str:
        return self.compatibility

    def get_subjects(self) -> list[str]:
        if self.down:
            raise ConnectionError("[Errno 111] Connection refused")
        return []


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture
def registry(client: FakeClient, warnings: list[str]) -> ConfluentRegistry:
    reg = ConfluentRegistry(URL, CATALOG, timeout_s=1.0, warn=warnings.append)
    reg._client = client  # type: ignore[assignment]
    return reg


def test_first_use_registers_the_history_oldest_first_then_is_cached(
    registry: ConfluentRegistry, client: FakeClient
) -> None:
    versions = CATALOG.versions("provenance_record")
    assert len(versions) >= 2, "the history this test is about"
    latest_id = registry.id_for("x.provenance-value", versions[-1])
    assert [s for s, _ in client.registered] == ["x.provenance-value"] * len(versions)
    assert [d for _, d in client.registered] == [v.definition for v in versions]
    assert latest_id == client.ids[versions[-1].json]
    assert registry.id_for("x.provenance-value", versions[-1]) == latest_id
    assert len(client.registered) == len(versions), "cached: not registered again"
    # an older version asked for later: already registered with the history
    assert registry.id_for("x.provenance-value", versions[0]) == client.ids[versions[0].json]
    assert len(client.registered) == len(versions)


def test_an_older_version_registers_only_the_history_up_to_it(
    registry: ConfluentRegistry, client: FakeClient
) -> None:
    first = CATALOG.versions("provenance_record")[0]
    registry.id_for("y.provenance-value", first)
    assert [d for _, d in client.registered] == [first.definition]


def test_register_history_returns_every_version_and_its_id(
    registry: ConfluentRegistry, client: FakeClient
) -> None:
    pairs = registry.register_history("z.provenance-value", "provenance_record")
    assert [v.version for v, _ in pairs] == [
        v.version for v in CATALOG.versions("provenance_record")
    ]
    assert [i for _, i in pairs] == [client.ids[v.json] for v, _ in pairs]


def test_a_refusal_is_the_registrys_message_verbatim_without_the_password(
    registry: ConfluentRegistry, client: FakeClient
) -> None:
    client.reject = "Incompatible artifact: x.requests-value [AVRO], list of diff types: [zzz]"
    with pytest.raises(SchemaRejected) as caught:
        registry.id_for("x.requests-value", CATALOG.latest("fraud_request"))
    message = str(caught.value)
    assert client.reject in message and "x.requests-value" in message
    assert "fraud_request.v1.avsc" in message
    assert "hunter2" not in message and "***" in message


def test_a_registry_that_is_down_is_one_line_naming_the_way_out(
    registry: ConfluentRegistry, client: FakeClient
) -> None:
    client.down = True
    for call in (
        lambda: registry.id_for("x.requests-value", CATALOG.latest("fraud_request")),
        registry.check,
        lambda: registry.writer_schema(7),
    ):
        with pytest.raises(RegistryUnavailable) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and "hunter2" not in message
        assert "does not answer" in message and "stack up --registry" in message


def test_ids_resolve_at_the_registry_first(registry: ConfluentRegistry, client: FakeClient) -> None:
    schema = CATALOG.latest("fraud_request")
    schema_id = registry.id_for("x.requests-value", schema)
    assert registry.writer_schema(schema_id)["name"] == schema.parsed["name"]
    registry.writer_schema(schema_id)
    assert client.lookups == [schema_id], "looked up once, then cached"


def test_a_local_id_from_before_the_switch_falls_back_to_schemas(
    registry: ConfluentRegistry, client: FakeClient
) -> None:
    old = CATALOG.versions("provenance_record")[0]
    local_id = local_schema_id(old)
    assert registry.writer_schema(local_id) is old.parsed
    assert client.lookups == [local_id]
    registry.writer_schema(local_id)
    assert client.lookups == [local_id]


def test_an_id_nobody_knows_is_unknown_schema_naming_id_and_registry(
    registry: ConfluentRegistry, client: FakeClient
) -> None:
    for _ in range(3):
        with pytest.raises(DecodeError) as caught:
            registry.writer_schema(424242)
        assert caught.value.reason == "unknown-schema"
        assert "424242" in caught.value.detail
        assert "http://user:***@127.0.0.1:18081/apis/ccompat/v7" in caught.value.detail
    assert client.lookups == [424242], "a miss is remembered: no lookup per record"


def test_a_miss_is_asked_again_after_a_while(
    registry: ConfluentRegistry, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower of a registry may not know an id its leader issued a moment ago."""
    import pipeline.codec.registry as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    with pytest.raises(DecodeError):
        registry.writer_schema(1)
    schema = CATALOG.latest("fraud_request")
    assert registry.id_for("x.requests-value", schema) == 1  # registered meanwhile
    now[0] += module.UNKNOWN_ID_RETRY_S / 2
    with pytest.raises(DecodeError):
        registry.writer_schema(1)
    now[0] += module.UNKNOWN_ID_RETRY_S
    assert registry.writer_schema(1)["name"] == schema.parsed["name"]
    assert client.lookups == [1, 1]


def test_compatibility_none_warns_once_per_subject(
    registry: ConfluentRegistry, client: FakeClient, warnings: list[str]
) -> None:
    registry.id_for("x.requests-value", CATALOG.latest("fraud_request"))
    assert warnings == []
    client.compatibility = "NONE"
    registry.id_for("y.requests-value", CATALOG.latest("fraud_request"))
    registry.id_for("y.requests-value", CATALOG.latest("fraud_request"))
    assert len(warnings) == 1 and "y.requests-value" in warnings[0] and "NONE" in warnings[0]


@pytest.mark.parametrize("url", ["127.0.0.1:18081", "ftp://host/x", "registry"])
def test_a_url_that_is_not_http_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="INFERSTREAM_SCHEMA_REGISTRY_URL"):
        ConfluentRegistry(url, CATALOG)
