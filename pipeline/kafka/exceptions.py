"""Errors of the Kafka adapter: all InferstreamErrors, so the CLI prints them in one line."""

from __future__ import annotations

from pipeline.errors import InferstreamError


class KafkaUnreachable(InferstreamError):
    """No broker of the bootstrap list answered in time."""

    def __init__(self, bootstrap: str, detail: str = "") -> None:
        self.bootstrap = bootstrap
        super().__init__(
            f"cannot reach Kafka at {bootstrap}"
            + (f" ({detail})" if detail else "")
            + "; is it running? (inferstream stack up, or set INFERSTREAM_KAFKA_BOOTSTRAP)"
        )


class KafkaConnectFailed(KafkaUnreachable):
    """A broker answered but the connection failed: credentials refused, certificate untrusted.

    One line naming the settings to check; never a secret (librdkafka's messages hold none)."""

    def __init__(self, bootstrap: str, reason: str) -> None:
        self.bootstrap = bootstrap
        InferstreamError.__init__(self, f"cannot connect to Kafka at {bootstrap}: {reason}")


class TopicConfigError(InferstreamError, ValueError):
    """The cluster cannot create topics as asked (e.g. more replicas than brokers)."""


class DeliveryFailed(InferstreamError):
    """Records were not acknowledged by the broker."""


class TopicNotFound(InferstreamError, LookupError):
    """The topic does not exist; `existing` holds the cluster's topic names, for suggestions."""

    def __init__(self, topic: str, existing: frozenset[str] = frozenset()) -> None:
        super().__init__(f"topic {topic!r} does not exist")
        self.topic = topic
        self.existing = existing


class RangeError(InferstreamError):
    """An offset or time range the topic cannot give (empty, expired, past the end)."""

    exit_code = 2
