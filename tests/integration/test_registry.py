"""Registry mode against a real Schema Registry (Apicurio, the `schema_registry` fixture):
`topics ensure` registers every subject's history, confluent-kafka's own AvroDeserializer
reads what we write, local-id records stay readable after the switch, and bad input (an
incompatible change, compatibility NONE, a registry that is down, an unknown id) is one line,
a warning or a dead letter. `stack up --registry` on spare ports: up, status, down."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.codec import AvroSerializer, registry_from_settings
from pipeline.codec.registry import local_schema_id
from pipeline.codec.subjects import topic_schemas
from pipeline.config import REPO_ROOT, Settings
from pipeline.core.registry import get_plugin, stream_names, stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.stack.process import port_open
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.helpers import WorkerProcess, port_free, read_all, values

pytestmark = [pytest.mark.integration, pytest.mark.registry]


@pytest.fixture
def env(env: dict[str, str], schema_registry: str) -> dict[str, str]:
    """The integration tests' env (conftest.py), in registry mode."""
    return {**env, "INFERSTREAM_SCHEMA_REGISTRY_URL": schema_registry}


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _schema_id(raw: bytes) -> int:
    return struct.unpack(">bI", raw[:5])[1]


def _free_port_pair(start: int) -> int:
    return next(p for p in range(start, start + 200, 2) if port_free(p) and port_free(p + 1))


def test_topics_ensure_registers_every_subject_with_its_history(
    env: dict[str, str], schema_registry: str, namespace: str
) -> None:
    first = _cli(env, "topics", "ensure")
    assert first.returncode == 0, first.stderr
    client = SchemaRegistryClient({"url": schema_registry})
    catalog = registry_from_settings(Settings()).catalog  # type: ignore[attr-defined]
    plugins = [get_plugin(name) for name in stream_names()]
    entries = [e for e in topic_schemas(plugins, namespace) if e.schema is not None]
    assert len(entries) >= 13
    for entry in entries:
        history = catalog.versions(entry.schema)
        assert len(client.get_versions(entry.subject)) == len(history), entry.subject
        for version in history:  # every version resolves, by the id the registry issued
            found = client.get_version(entry.subject, history.index(version) + 1)
            assert json.loads(found.schema.schema_str) == json.loads(version.json), entry
        assert f"schema  {entry.subject} (" in first.stdout
    again = _cli(env, "topics", "ensure")
    assert again.returncode == 0, again.stderr
    schema_lines = [ln for ln in first.stdout.splitlines() if ln.startswith("schema")]
    assert schema_lines == [ln for ln in again.stdout.splitlines() if ln.startswith("schema")]


def test_confluents_deserializer_reads_requests_results_provenance_and_dead_letters(
    settings: Settings, worker, schema_registry: str
) -> None:
    spec = stream_topics("fraud", settings.topic_namespace)
    good = TransactionGenerator(seed=18).generate(200).records
    with RequestProducer(settings, spec) as producer:
        ids = producer.send_many(good)
    registry = registry_from_settings(settings)
    encode = AvroSerializer(registry, registry.catalog.latest("fraud_request"), spec.requests)
    nan_amount = {**good[0], "request_id": "bad-nan", "amount": float("nan")}
    raw = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    raw.produce(spec.requests, key=b"card-x", value=encode(nan_amount))
    raw.produce(spec.requests, key=b"card-x", value=struct.pack(">bI", 0, 424242) + b"\x02")
    raw.flush(30)

    client = SchemaRegistryClient({"url": schema_registry})
    decode = AvroDeserializer(client)

    def confluent_read(topic: str, expected: int) -> list[dict]:
        records = read_all(settings, topic, expected=expected)
        assert len(records) == expected, topic
        latest = client.get_latest_version(f"{topic}-value").schema_id
        assert all(_schema_id(r.raw) == latest for r in records if r.error is None), topic
        ctx = SerializationContext(topic, MessageField.VALUE)
        return [decode(r.raw, ctx) for r in records if r.error is None]

    requests = confluent_read(spec.requests, 202)
    assert {r["request_id"] for r in requests} == {*ids, "bad-nan"}
    results = confluent_read(spec.results, 200)
    assert {r["request_id"] for r in results} == set(ids)
    assert all(r["decision"] in {"approve", "review", "decline"} for r in results)
    provenance = confluent_read(spec.provenance, 200)
    assert {p["request_id"] for p in provenance} == set(ids)
    assert all(p["source_topic"] == spec.requests for p in provenance)

    dead = read_all(settings, spec.dlq, expected=2)
    by_reason = {r.headers["dlq.reason"].decode(): r for r in dead}
    assert set(by_reason) == {"invalid-feature", "unknown-schema"}
    original = decode(
        by_reason["invalid-feature"].raw, SerializationContext(spec.dlq, MessageField.VALUE)
    )
    assert original["request_id"] == "bad-nan"  # the original, readable by anyone
    detail = by_reason["unknown-schema"].headers["dlq.detail"].decode()
    assert "424242" in detail and schema_registry in detail


def test_records_written_in_local_id_mode_stay_readable_after_the_switch(
    settings: Settings, env: dict[str, str]
) -> None:
    spec = stream_topics("fraud", settings.topic_namespace)
    local = dataclasses.replace(settings, schema_registry_url="")
    before = TransactionGenerator(seed=3).generate(150).records
    with RequestProducer(local, spec) as producer:  # an existing deployment, before the switch
        old_ids = producer.send_many(before)
    catalog = registry_from_settings(local).catalog  # type: ignore[attr-defined]
    local_id = local_schema_id(catalog.latest("fraud_request"))

    worker = WorkerProcess(env).start()  # registry mode from here on
    try:
        with RequestProducer(settings, spec) as producer:
            new_ids = producer.send_many(TransactionGenerator(seed=4).generate(150).records)
        results = values(read_all(settings, spec.results, expected=300))
    finally:
        worker.stop()
    assert {r["request_id"] for r in results} == set(old_ids) | set(new_ids)
    requests = read_all(settings, spec.requests, expected=300)
    assert all(r.error is None for r in requests)  # read in registry mode, old ids included
    written_with = {_schema_id(r.raw) for r in requests}
    assert local_id in written_with and len(written_with) == 2
    assert read_all(settings, spec.dlq, idle_timeout=2) == []


def test_an_incompatible_change_stops_with_the_registrys_reason_before_anything_is_produced(
    settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    assert _cli(env, "topics", "ensure", "--streams", "fraud").returncode == 0
    changed = tmp_path / "schemas"
    shutil.copytree(settings.schemas_dir, changed)
    v1 = json.loads((changed / "fraud_request.v1.avsc").read_text())
    v1["fields"].append({"name": "new_required_field", "type": "string"})  # no default
    (changed / "fraud_request.v2.avsc").write_text(json.dumps(v1))
    env = {**env, "INFERSTREAM_SCHEMAS_DIR": str(changed)}

    ensure = _cli(env, "topics", "ensure", "--streams", "fraud")
    produce = _cli(env, "produce", "fraud", "--count", "20")
    for result in (ensure, produce):
        assert result.returncode == 1, result.stdout + result.stderr
        error = result.stderr.strip().splitlines()
        assert len(error) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "rejected fraud_request.v2.avsc under subject" in error[0]
        assert "Incompatible" in error[0]  # Apicurio's own words, passed on verbatim
    spec = stream_topics("fraud", settings.topic_namespace)
    assert read_all(settings, spec.requests, idle_timeout=2) == []


def test_a_subject_at_compatibility_none_is_warned_about(
    env: dict[str, str], schema_registry: str, namespace: str
) -> None:
    assert _cli(env, "topics", "ensure", "--streams", "fraud").returncode == 0
    subject = f"{namespace}fraud.results-value"
    SchemaRegistryClient({"url": schema_registry}).set_compatibility(subject, "NONE")
    again = _cli(env, "topics", "ensure", "--streams", "fraud")
    assert again.returncode == 0, again.stderr
    warnings = [ln for ln in again.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and subject in warnings[0] and "NONE" in warnings[0], again.stderr


def test_a_registry_that_is_down_is_one_line_for_topics_ensure_and_the_worker(
    env: dict[str, str],
) -> None:
    port = _free_port_pair(28181)
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    env = {**env, "INFERSTREAM_SCHEMA_REGISTRY_URL": url}
    for args in (("topics", "ensure"), ("worker",)):
        result = _cli(env, *args)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("inferstream: error")]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"Schema Registry at {url} does not answer" in lines[0]
        assert "stack up --registry" in lines[0]


def test_stack_up_registry_is_idempotent_shown_by_status_and_stopped_by_down(
    stack, tmp_path: Path
) -> None:
    port = _free_port_pair(28081)
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    env = {
        **os.environ,
        "INFERSTREAM_KAFKA_BOOTSTRAP": stack.bootstrap,  # the session's: used, left alone
        "INFERSTREAM_REDIS_URL": stack.redis_url,
        "INFERSTREAM_STATE_DIR": str(tmp_path),
        "INFERSTREAM_SCHEMA_REGISTRY_URL": url,
    }
    pid_file = tmp_path / "stack" / f"registry-{port}" / "registry.pid"
    try:
        up = _cli(env, "stack", "up", timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"registry: up at {url}" in up.stdout and f"Schema Registry: {url}" in up.stdout
        assert pid_file.exists()
        again = _cli(env, "stack", "up", timeout=180)
        assert again.returncode == 0 and "registry: already running" in again.stdout
        status = _cli(env, "stack", "status")
        line = next(ln for ln in status.stdout.splitlines() if ln.startswith("registry"))
        assert url in line and " up " in line and "pid " in line, status.stdout
        health = f"http://127.0.0.1:{port + 1}/health/ready"
        with urllib.request.urlopen(health, timeout=5) as reply:
            assert json.loads(reply.read())["status"] == "UP"
        catalog = registry_from_settings(Settings()).catalog  # type: ignore[attr-defined]
        schema = catalog.latest("drift_alert")
        client = SchemaRegistryClient({"url": url})
        schema_id = client.register_schema("x-value", Schema(schema.json, "AVRO"))

        down = _cli(env, "stack", "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "registry: stopped" in down.stdout
        assert down.stdout.count("not started by inferstream; left running") == 2
        assert not pid_file.exists() and not port_open("127.0.0.1", port)

        # restarted, it still knows the ids it issued (the topics still carry them)
        assert _cli(env, "stack", "up", timeout=180).returncode == 0
        found = SchemaRegistryClient({"url": url}).get_schema(schema_id)
        assert json.loads(found.schema_str) == json.loads(schema.json)
    finally:
        final = _cli(env, "stack", "down")
    assert final.returncode == 0, final.stdout + final.stderr
    assert not pid_file.exists() and not port_open("127.0.0.1", port)


def test_no_java_21_is_one_line_naming_the_alternatives(stack, tmp_path: Path) -> None:
    old_java = tmp_path / "bin" / "java"
    old_java.parent.mkdir()
    old_java.write_text("#!/bin/sh\necho 'openjdk version \"17.0.2\" 2022-01-18' >&2\n")
    old_java.chmod(0o755)
    port = _free_port_pair(28281)
    env = {
        **os.environ,
        "INFERSTREAM_KAFKA_BOOTSTRAP": stack.bootstrap,
        "INFERSTREAM_REDIS_URL": stack.redis_url,
        "INFERSTREAM_STATE_DIR": str(tmp_path / "state"),
        "INFERSTREAM_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{port}/apis/ccompat/v7",
        "INFERSTREAM_REGISTRY_JAVA": str(old_java),
    }
    result = _cli(env, "stack", "up", "--registry")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("inferstream: error: "), result.stderr
    assert "needs Java 21+" in error[0] and "is Java 17" in error[0]
    assert "INFERSTREAM_SCHEMA_REGISTRY_URL" in error[0] and "without one" in error[0]
