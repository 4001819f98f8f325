"""Kafka security settings: parsed, validated together, given to every client, never shown."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from agents.app import broker_credentials
from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.errors import SettingsError
from pipeline.kafka import admin, producer, reader
from pipeline.kafka.client_config import (
    ConnectionProblems,
    client_config,
    describe,
    redacted,
    security_config,
)
from pipeline.kafka.publisher import producer_config

PASSWORD = "s3cr3t-Pa55"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka.password"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def sasl(password_file: Path) -> Settings:
    return Settings(
        kafka_bootstrap="broker:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc",
        kafka_sasl_password_file=str(password_file),
    )


def test_plaintext_adds_nothing_but_bootstrap_and_logger() -> None:
    config = client_config(Settings(kafka_bootstrap="k:9092"))
    assert set(config) == {"bootstrap.servers", "logger"}


def test_sasl_ssl_gives_librdkafka_its_settings_with_the_password_from_the_file(
    sasl: Settings,
) -> None:
    config = security_config(sasl)
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"
    assert config["sasl.username"] == "svc"
    assert config["sasl.password"] == PASSWORD  # first line, newline stripped
    assert config["ssl.endpoint.identification.algorithm"] == "https"


def test_every_client_config_carries_the_security_settings(sasl: Settings) -> None:
    for config in (
        client_config(sasl),
        producer_config(sasl),
        admin.tool_client_config(sasl),
    ):
        assert config["security.protocol"] == "sasl_ssl"
        assert config["sasl.password"] == PASSWORD


def test_the_request_producer_and_the_reader_build_their_clients_with_them(
    sasl: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    class Capture:
        def __init__(self, config: dict[str, Any]) -> None:
            seen.append(config)

    monkeypatch.setattr(producer, "Producer", Capture)
    producer.RequestProducer(sasl, stream_topics("fraud", ""))
    consumer = reader._consumer(sasl)  # a real librdkafka client: it accepts the settings
    consumer.close()
    assert (
        seen and seen[0]["sasl.username"] == "svc" and seen[0]["bootstrap.servers"] == "broker:9093"
    )


def test_a_bare_bootstrap_gets_the_process_settings(
    password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERSTREAM_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    monkeypatch.setenv("INFERSTREAM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("INFERSTREAM_KAFKA_SASL_PASSWORD_FILE", str(password_file))
    config = admin.tool_client_config("other:9092")
    assert config["bootstrap.servers"] == "other:9092"
    assert config["security.protocol"] == "sasl_plaintext"
    assert config["sasl.password"] == PASSWORD


def test_passthrough_variables_become_librdkafka_settings() -> None:
    s = Settings.from_env(
        {
            "INFERSTREAM_KAFKA_X_SOCKET_KEEPALIVE_ENABLE": "true",
            "INFERSTREAM_KAFKA_X_CLIENT_ID": "svc-1",
            "INFERSTREAM_KAFKA_X_SSL_ENGINE__ID": "x",  # `__` is a literal underscore
        }
    )
    config = client_config(s)
    assert config["socket.keepalive.enable"] == "true"
    assert config["client.id"] == "svc-1"
    assert config["ssl.engine_id"] == "x"


def test_passthrough_cannot_override_a_named_setting() -> None:
    with pytest.raises(SettingsError, match="set INFERSTREAM_KAFKA_SASL_PASSWORD_FILE instead"):
        Settings.from_env({"INFERSTREAM_KAFKA_X_SASL_PASSWORD": "x"})
    with pytest.raises(SettingsError, match="unknown environment variable"):
        Settings.from_env({"INFERSTREAM_KAFKA_Y_CLIENT_ID": "x"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"INFERSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "needs INFERSTREAM_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "INFERSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "INFERSTREAM_KAFKA_SASL_USERNAME": "u",
            },
            "needs INFERSTREAM_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {"INFERSTREAM_KAFKA_SSL_CA_LOCATION": "/etc/hostname"},
            "does not use TLS",
        ),
        (
            {
                "INFERSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                "INFERSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION": "/etc/hostname",
            },
            "set both",
        ),
        (
            {
                "INFERSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                "INFERSTREAM_KAFKA_SSL_CA_LOCATION": "/nope",
            },
            "INFERSTREAM_KAFKA_SSL_CA_LOCATION='/nope': no such file",
        ),
        ({"INFERSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"}, "expected one of PLAINTEXT, SSL"),
    ],
)
def test_bad_combinations_are_one_line_before_any_work(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreadable_password_file_is_named_never_its_content(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    s = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="u",
        kafka_sasl_password_file=str(empty),
    )
    with pytest.raises(SettingsError, match="empty"):
        client_config(s)


def test_secrets_never_appear_in_repr_str_or_redacted_configs(
    sasl: Settings, password_file: Path
) -> None:
    s = dataclasses.replace(
        sasl,
        kafka_sasl_password_file="",
        kafka_sasl_password=PASSWORD,
        redis_url=f"redis://user:{PASSWORD}@cache:6379/0",
        redis_password=PASSWORD,
        kafka_extra=(("ssl.keystore.password", PASSWORD), ("client.id", "svc")),
    )
    for shown in (repr(s), str(s), f"{s}", str(redacted(client_config(s)))):
        assert PASSWORD not in shown
    assert "client.id" in repr(s) and "redis://user:***@cache:6379/0" in repr(s)
    assert redacted(client_config(s))["sasl.password"] == "***"


def _error(code: int, text: str) -> KafkaError:
    return KafkaError(code, text)


def test_connection_problems_become_one_line_naming_the_settings() -> None:
    problems = ConnectionProblems()
    assert problems.reason() is None
    problems(_error(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))  # not kept
    assert problems.reason() is None
    problems(
        _error(
            KafkaError._AUTHENTICATION,
            "sasl_ssl://h:1/bootstrap: SASL authentication error: Authentication failed during "
            "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
            "(after 316ms in state AUTH_REQ)",
        )
    )
    assert "SASL authentication failed" in (problems.reason() or "")
    tls = describe(
        _error(
            KafkaError._SSL,
            "ssl://h:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate "
            "verify failed: broker certificate could not be verified (after 5ms in state SSL)",
        )
    )
    assert "not trusted" in tls and "INFERSTREAM_KAFKA_SSL_CA_LOCATION" in tls


def test_faust_gets_the_same_credentials_and_does_not_show_the_password(
    sasl: Settings, tmp_path: Path
) -> None:
    plain = broker_credentials(Settings())
    assert plain is None
    credentials = broker_credentials(
        dataclasses.replace(sasl, kafka_security_protocol="SASL_PLAINTEXT")
    )
    assert credentials.username == "svc" and credentials.password == PASSWORD  # type: ignore[union-attr]
    assert credentials.mechanism.value == "SCRAM-SHA-256"  # type: ignore[union-attr]
    assert PASSWORD not in repr(credentials)
    tls = broker_credentials(sasl)
    assert tls.ssl_context is not None  # type: ignore[union-attr]
    assert tls.protocol.value == "SASL_SSL"  # type: ignore[union-attr]


def test_configs_show_no_secret_in_repr_and_librdkafka_takes_them(sasl: Settings) -> None:
    from confluent_kafka import Producer

    for config in (client_config(sasl), producer_config(sasl), admin.tool_client_config(sasl)):
        assert PASSWORD not in repr(config) and PASSWORD not in str(config)
        assert PASSWORD not in repr({"engine": config})  # inside a dataclass or a dict
        assert config["sasl.password"] == PASSWORD  # the value itself is intact
    Producer(client_config(sasl)).flush(0)  # a dict subclass is a valid librdkafka config
