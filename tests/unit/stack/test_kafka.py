"""Kafka broker config rendering, address parsing, jar cache and Java checks (no broker)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT, Settings
from pipeline.stack import kafka
from pipeline.stack.process import StackError


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return dict(pairs)


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    props = _props(
        kafka.render_server_properties(port=19092, controller_port=19093, log_dir=tmp_path / "d")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "d")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "num.partitions",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("localhost:19092,localhost:19094", ("localhost", 19092)),
        ("PLAINTEXT://127.0.0.1:29092", ("127.0.0.1", 29092)),
        ("broker.internal", ("broker.internal", 9092)),
    ],
)
def test_parse_bootstrap(bootstrap: str, expected: tuple[str, int]) -> None:
    assert kafka.parse_bootstrap(bootstrap) == expected


def test_service_paths_follow_settings(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:19092", state_dir=tmp_path, cache_dir=tmp_path)
    svc = kafka.KafkaService(settings)
    assert (svc.port, svc.controller_port) == (19092, 19093)
    assert svc.dir == tmp_path / "stack" / "kafka-19092"
    assert svc.pid_file.parent == svc.log_file.parent == svc.properties.parent == svc.dir
    assert kafka.kafka_home(settings) == tmp_path / f"kafka-{kafka.KAFKA_VERSION}"


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {kafka.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("something else", None),
    ],
)
def test_parse_java_version(text: str, major: int | None) -> None:
    assert kafka.parse_java_version(text) == major


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(kafka.shutil, "which", lambda name: "/bin/true")
    monkeypatch.setattr(kafka, "java_major_version", lambda java: 11)
    with pytest.raises(StackError, match=r"Java 17\+.*docker compose"):
        kafka.find_java()


def test_missing_java_names_the_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)
    with pytest.raises(StackError) as err:
        kafka.find_java()
    assert "docker compose" in str(err.value)
    assert "INFERSTREAM_KAFKA_BOOTSTRAP" in str(err.value)


def test_cached_jars_need_no_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    home = kafka.kafka_home(settings)
    (home / "libs").mkdir(parents=True)
    (home / ".complete").write_text(kafka.KAFKA_VERSION)
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)  # no mvn anywhere
    lines: list[str] = []
    assert kafka.ensure_jars(settings, lines.append) == home / "libs"
    assert lines == []  # no download, no progress


def test_missing_maven_names_the_alternatives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)
    with pytest.raises(StackError, match=r"`mvn`.*docker compose.*INFERSTREAM_KAFKA_BOOTSTRAP"):
        kafka.ensure_jars(Settings(cache_dir=tmp_path), print)


def test_pom_pins_the_version_in_code() -> None:
    pom = (REPO_ROOT / "ops" / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{kafka.KAFKA_VERSION}</kafka.version>" in pom
    assert "<artifactId>slf4j-simple</artifactId>" in pom
