"""Topic naming: one family of topics per stream, plus the shared drift alerts topic."""

from __future__ import annotations

from dataclasses import dataclass

DRIFT_ALERTS_TOPIC = "drift.alerts"


def drift_alerts_topic(namespace: str = "") -> str:
    return f"{namespace}{DRIFT_ALERTS_TOPIC}"


@dataclass(frozen=True)
class StreamTopics:
    """`<namespace><stream>.requests` and its outputs.

    The namespace prefixes every topic (and consumer group) name, so several environments, the
    demo or test runs can share a cluster without touching each other's topics.
    """

    name: str
    namespace: str = ""

    @property
    def prefix(self) -> str:
        return f"{self.namespace}{self.name}"

    @property
    def requests(self) -> str:
        return f"{self.prefix}.requests"

    @property
    def results(self) -> str:
        return f"{self.prefix}.results"

    @property
    def provenance(self) -> str:
        return f"{self.prefix}.provenance"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def shadow(self) -> str:
        return f"{self.prefix}.shadow"

    @property
    def events(self) -> str:
        """The stream's model-tier events (canary promotions and rollbacks)."""
        return f"{self.prefix}.events"

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.requests, self.results, self.provenance, self.dlq, self.shadow, self.events)
