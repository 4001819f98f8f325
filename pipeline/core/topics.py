"""Stream families: one set of topics per stream, and what each stream's requests look like."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from types import ModuleType

DRIFT_ALERTS_TOPIC = "drift.alerts"


def drift_alerts_topic(namespace: str = "") -> str:
    return f"{namespace}{DRIFT_ALERTS_TOPIC}"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    request_schema: str  # schema name under schemas/
    key_field: str  # request field that is the Kafka key (order is kept per key)
    model_name: str
    # module with build_features() and DRIFT_EXEMPT_FEATURES: the stream's versioned preprocessing
    features_module: str
    # prefix of every topic name, so several environments (or test runs) can share a cluster
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

    def features(self) -> ModuleType:
        return importlib.import_module(self.features_module)

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.requests, self.results, self.provenance, self.dlq, self.shadow)


STREAMS: dict[str, StreamSpec] = {
    "fraud": StreamSpec(
        name="fraud",
        request_schema="fraud_request",
        key_field="card_id",
        model_name="fraud",
        features_module="pipeline.streams.fraud.features",
    ),
}


def stream_spec(name: str, namespace: str = "") -> StreamSpec:
    try:
        spec = STREAMS[name]
    except KeyError:
        raise KeyError(f"unknown stream {name!r}; known: {', '.join(sorted(STREAMS))}") from None
    return replace(spec, namespace=namespace) if namespace else spec
