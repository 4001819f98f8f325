"""The local Schema Registry service: URL, properties, Java 21+ lookup, archive cache and its
place in ensure_up / status / down (with a `sleep` stand-in, as tests/unit/stack/test_api.py)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import pipeline.stack as stack
from pipeline.config import Settings
from pipeline.stack import process
from pipeline.stack import registry as reg
from pipeline.stack.kafka import KafkaService
from pipeline.stack.redis import RedisService
from pipeline.stack.registry import RegistryService


def _fake_java(directory: Path, version: str) -> Path:
    """An executable that answers `-version` like a JDK of `version` (on stderr)."""
    java = directory / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2026-01-01' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return java


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))


def test_default_url_and_ports(tmp_path: Path) -> None:
    svc = RegistryService(Settings(state_dir=tmp_path))
    assert svc.address == reg.DEFAULT_REGISTRY_URL == "http://127.0.0.1:18081/apis/ccompat/v7"
    assert (svc.host, svc.port, svc.management_port) == ("127.0.0.1", 18081, 18082)
    assert svc.health_url == "http://127.0.0.1:18082/health/ready"
    assert svc.pid_file == tmp_path / "stack" / "registry-18081" / "registry.pid"
    configured = Settings(schema_registry_url="http://localhost:28081/apis/ccompat/v7")
    assert RegistryService(configured).port == 28081


def test_server_properties_bind_loopback_and_check_backward(tmp_path: Path) -> None:
    props = reg.server_properties(
        host="127.0.0.1",
        port=18081,
        management_port=18082,
        cache_dir=tmp_path,
        data_dir=tmp_path / "data",
    )
    assert props["quarkus.http.host"] == props["quarkus.management.host"] == "127.0.0.1"
    assert (props["quarkus.http.port"], props["quarkus.management.port"]) == ("18081", "18082")
    assert props["apicurio.rules.global.compatibility"] == "BACKWARD"
    assert props["vertx.cacheDirBase"] == str(tmp_path)
    # on disk, as Kafka's data: ids on the topics resolve after a restart
    assert props["apicurio.datasource.url"] == f"jdbc:h2:file:{tmp_path / 'data' / 'registry'}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:18081/apis/ccompat/v7", ("127.0.0.1", 18081)),
        ("https://u:p@registry.example:8443", ("registry.example", 8443)),
        ("http://registry.example", ("registry.example", 80)),
    ],
)
def test_parse_registry_url(url: str, expected: tuple[str, int]) -> None:
    assert reg.parse_registry_url(url) == expected


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(stack.StackError, match="expected http://"):
        reg.parse_registry_url("127.0.0.1:18081")


def test_a_local_url_without_the_confluent_path_says_which_to_use(tmp_path: Path) -> None:
    svc = RegistryService(
        Settings(schema_registry_url="http://127.0.0.1:18081", state_dir=tmp_path)
    )
    with pytest.raises(stack.StackError, match=r"http://127\.0\.0\.1:18081/apis/ccompat/v7"):
        svc.prepare(lambda m: None)


def test_java_21_is_found_in_the_jvm_directory_past_an_older_default(
    tmp_path: Path, no_java: None
) -> None:
    _fake_java(tmp_path / "jvm" / "java-17-openjdk", "17.0.2")
    newer = _fake_java(tmp_path / "jvm" / "temurin-25-jdk", "25.0.3")
    assert reg.find_registry_java(Settings(), jvm_dirs=[tmp_path / "jvm"]) == str(newer)


def test_the_setting_comes_first_as_a_binary_or_a_jdk_home(tmp_path: Path, no_java: None) -> None:
    _fake_java(tmp_path / "jvm" / "temurin-25-jdk", "25.0.3")
    home = tmp_path / "my-jdk"
    java = _fake_java(home, "21.0.1")
    for setting in (str(home), str(java)):
        found = reg.find_registry_java(Settings(registry_java=setting), [tmp_path / "jvm"])
        assert found == str(java)


def test_a_java_named_by_the_setting_is_not_second_guessed(tmp_path: Path, no_java: None) -> None:
    _fake_java(tmp_path / "jvm" / "temurin-25-jdk", "25.0.3")
    old = _fake_java(tmp_path / "old-jdk", "17.0.2")
    with pytest.raises(stack.StackError, match=f"{old} is Java 17"):
        reg.find_registry_java(Settings(registry_java=str(old)), [tmp_path / "jvm"])


def test_no_java_21_is_one_line_naming_what_was_found_and_the_alternatives(
    tmp_path: Path, no_java: None
) -> None:
    old = _fake_java(tmp_path / "jvm" / "java-17-openjdk", "17.0.2")
    with pytest.raises(stack.StackError) as caught:
        reg.find_registry_java(Settings(), jvm_dirs=[tmp_path / "jvm"])
    message = str(caught.value)
    assert "\n" not in message
    assert "needs Java 21+" in message and f"{old} is Java 17" in message
    for way_out in (
        "INFERSTREAM_REGISTRY_JAVA",
        "INFERSTREAM_SCHEMA_REGISTRY_URL at a Schema Registry you already run",
        "run without one",
    ):
        assert way_out in message


def test_a_cached_archive_is_used_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(cache_dir=tmp_path)
    home = reg.registry_home(settings)
    (home / "app").mkdir(parents=True)
    (home / ".complete").write_text("3.3.3\n")
    monkeypatch.setattr(reg.shutil, "which", lambda name: pytest.fail("must not run mvn"))
    assert reg.ensure_archive(settings, lambda m: None) == home / "app"


def test_no_maven_is_one_line_with_the_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reg.shutil, "which", lambda name: None)
    with pytest.raises(stack.StackError, match=r"`mvn`.*Alternatives"):
        reg.ensure_archive(Settings(cache_dir=tmp_path), lambda m: None)


def test_sha256_of(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert reg.sha256_of(path) == expected


def test_the_registry_joins_the_services_when_asked_for_or_configured() -> None:
    assert stack.services_for(Settings()) == ("kafka", "redis")
    assert stack.services_for(Settings(), registry=True) == ("kafka", "redis", "registry")
    configured = Settings(schema_registry_url="http://127.0.0.1:18081/apis/ccompat/v7")
    assert stack.services_for(configured) == ("kafka", "redis", "registry")


# ---------------------------------------------------------------- in ensure_up / status / down


class FakeNet:
    def __init__(self) -> None:
        self.listening: set[int] = set()

    def port_open(self, host: str, port: int, timeout: float = 0.5) -> bool:
        return port in self.listening


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    net = FakeNet()
    monkeypatch.setattr(stack, "port_open", net.port_open)
    for cls in (KafkaService, RedisService, RegistryService):
        monkeypatch.setattr(cls, "answers", lambda self, timeout=1.0: self.port in net.listening)
        monkeypatch.setattr(cls, "prepare", lambda self, log: None)

        def launch(self, log) -> int:  # type: ignore[no-untyped-def]
            pid = process.spawn(["sleep", "60"], log_path=self.log_file, pid_path=self.pid_file)
            net.listening.add(self.port)
            return pid

        monkeypatch.setattr(cls, "launch", launch)
    cfg = Settings(
        kafka_bootstrap="127.0.0.1:19092",
        redis_url="redis://127.0.0.1:16379/0",
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
    )
    yield cfg
    stack.down(cfg, log=lambda m: None, services=stack.ALL_SERVICES, timeout=2)


def test_up_with_the_registry_then_status_and_down_know_it(settings: Settings) -> None:
    lines: list[str] = []
    info = stack.ensure_up(settings, log=lines.append, services=stack.ALL_SERVICES)
    assert sorted(info.started) == ["kafka", "redis", "registry"]
    assert info.registry_url == reg.DEFAULT_REGISTRY_URL
    again = stack.ensure_up(settings, log=lines.append, services=stack.ALL_SERVICES)
    assert again.started == [] and sum("already running" in ln for ln in lines) == 3

    rows = {row.name: row for row in stack.status(settings)}
    assert set(rows) == {"kafka", "redis", "registry"}, "running: listed without asking"
    assert rows["registry"].up and rows["registry"].managed
    pid = rows["registry"].pid
    assert sorted(stack.down(settings, log=lines.append)) == ["kafka", "redis", "registry"]
    assert pid is not None and not process.pid_alive(pid)
    assert "registry: stopped" in "\n".join(lines)


def test_without_the_registry_status_and_down_do_not_mention_it(settings: Settings) -> None:
    info = stack.ensure_up(settings, log=lambda m: None)
    assert info.registry_url == ""
    assert [row.name for row in stack.status(settings)] == ["kafka", "redis"]
    assert [row.name for row in stack.status(settings, registry=True)][-1] == "registry"
    lines: list[str] = []
    stack.down(settings, log=lines.append)
    assert not any(line.startswith("registry") for line in lines)


def test_a_session_with_the_registry_stops_it_when_the_last_one_ends(settings: Settings) -> None:
    with stack.session(settings, log=lambda m: None, services=("registry",)) as info:
        pid = process.read_pid(RegistryService(settings).pid_file)
        assert info.started == ["registry"] and pid is not None
    assert not process.pid_alive(pid.pid)
    assert os.path.exists(RegistryService(settings).pid_file) is False
