"""The librdkafka settings every Kafka client of the process shares: bootstrap and security.

Every client (engine consumers, publisher, request producer, admin, readers) starts from
`client_config(settings)`, so security settings (INFERSTREAM_KAFKA_SECURITY_PROTOCOL, SASL,
TLS files, the INFERSTREAM_KAFKA_X_* passthrough) reach all of them. Functions that take a
bare bootstrap string (`read_ranges(bootstrap, ...)`) get the process's own security settings
from the environment with that bootstrap (`settings_for`), so old call sites stay secured.

Secrets (the SASL password, key passwords, secret passthrough values) are read from their
files here, at client construction, and are shown only as `***` by `redacted`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError

from pipeline.config import Settings, is_secret_key, read_secret

# librdkafka's own log lines (broker down, retries) as structured records, not raw stderr
LIBRDKAFKA_LOGGER = logging.getLogger("inferstream.librdkafka")

KafkaTarget = str | Settings  # a bare bootstrap (the process's security settings) or Settings

_SECRET_CONFIG_KEYS = ("sasl.password", "ssl.key.password")


def settings_for(target: KafkaTarget) -> Settings:
    """`target` itself, or the process's settings (environment) with bootstrap `target`."""
    if isinstance(target, Settings):
        return target
    current = Settings.from_env()
    if current.kafka_bootstrap == target:
        return current
    return dataclasses.replace(current, kafka_bootstrap=target)


def bootstrap_of(target: KafkaTarget) -> str:
    return target.kafka_bootstrap if isinstance(target, Settings) else target


def security_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka security settings of `settings` (empty for plain PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    config: dict[str, Any] = {}
    if protocol != "PLAINTEXT":
        config["security.protocol"] = protocol.lower()
    if protocol.startswith("SASL_"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = kafka_sasl_password(settings)
    if protocol in ("SSL", "SASL_SSL"):
        # the broker's name is checked against its certificate (librdkafka's default, stated
        # so that a passthrough of `ssl.endpoint.identification.algorithm=none` is deliberate)
        config["ssl.endpoint.identification.algorithm"] = "https"
        if settings.kafka_ssl_ca_location:
            config["ssl.ca.location"] = settings.kafka_ssl_ca_location
        if settings.kafka_ssl_certificate_location:
            config["ssl.certificate.location"] = settings.kafka_ssl_certificate_location
            config["ssl.key.location"] = settings.kafka_ssl_key_location
        if settings.kafka_ssl_key_password_file:
            config["ssl.key.password"] = read_secret(
                settings.kafka_ssl_key_password_file, "INFERSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE"
            )
    config.update(settings.kafka_extra)
    return config


def kafka_sasl_password(settings: Settings) -> str:
    if settings.kafka_sasl_password_file:
        return read_secret(
            settings.kafka_sasl_password_file, "INFERSTREAM_KAFKA_SASL_PASSWORD_FILE"
        )
    return settings.kafka_sasl_password


class KafkaConfig(dict[str, Any]):
    """A librdkafka config (a dict, as librdkafka takes it) whose repr and str show secret
    values as `***`: configs end up in dataclass reprs (EngineConfig), tracebacks and logs."""

    def __repr__(self) -> str:
        return repr(redacted(self))

    __str__ = __repr__


def client_config(settings: KafkaTarget) -> KafkaConfig:
    """bootstrap.servers, the logger and the security settings: the base of every client."""
    s = settings_for(settings)
    return KafkaConfig(
        {
            "bootstrap.servers": s.kafka_bootstrap,
            "logger": LIBRDKAFKA_LOGGER,
            **security_config(s),
        }
    )


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` fit to show (errors, logs, status): secret values as `***`."""
    return {
        key: "***" if (key in _SECRET_CONFIG_KEYS or is_secret_key(key)) else value
        for key, value in config.items()
    }


class ConnectionProblems:
    """librdkafka's `error_cb`: keeps the last authentication or TLS failure, so that a
    client that cannot connect says why in one line instead of "no answer" (librdkafka
    retries those errors quietly until the request times out)."""

    _CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        text = error.str()
        if error.code() in self._CODES or "SSL handshake failed" in text or "SASL" in text:
            with self._lock:
                self.last = error

    def reason(self) -> str | None:
        """The failure as one short line, or None when there was none."""
        with self._lock:
            error = self.last
        return None if error is None else describe(error)


def describe(error: KafkaError) -> str:
    """One line naming what failed and which settings to check (never a secret)."""
    text = error.str()
    if "SSL handshake failed" in text or error.code() == KafkaError._SSL:
        if "certificate verify failed" in text or "could not be verified" in text:
            return (
                "TLS: the broker's certificate is not trusted (certificate verify failed); "
                "check INFERSTREAM_KAFKA_SSL_CA_LOCATION"
            )
        return f"TLS handshake failed ({_short(text)}); check INFERSTREAM_KAFKA_SSL_* settings"
    if "SASL" in text or error.code() == KafkaError._AUTHENTICATION:
        if "invalid credentials" in text or "Authentication failed" in text:
            return (
                "SASL authentication failed (invalid user name or password); check "
                "INFERSTREAM_KAFKA_SASL_USERNAME and INFERSTREAM_KAFKA_SASL_PASSWORD_FILE"
            )
        return f"SASL failed ({_short(text)}); check INFERSTREAM_KAFKA_SASL_* settings"
    return _short(text)


def _short(text: str) -> str:
    """librdkafka's message without its `(after N ms in state X)` tail and broker prefix."""
    text = text.split(" (after ", 1)[0]
    return text.rsplit(": ", 1)[-1] if text.startswith(("sasl_", "ssl://")) else text
