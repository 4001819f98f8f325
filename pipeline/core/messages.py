"""Messages as the transport hands them to us and takes them back: bytes plus metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[str, bytes]]

# a request header the gateway sets on requests of a tenant over its cost budget: the worker
# serves them with the routing policy's cheaper fallback version, flagged degraded
DEGRADE_HEADER = "inferstream-degrade"


@dataclass(slots=True)
class InboundMessage:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class OutboundMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
