"""Canary decisions as records on `<stream>.events` (schemas/tier_event.v1.avsc).

The canary decides on the infer thread; it only hands the decision to `TierEvents.add` (a
lock-free deque append). The worker's deliver stage (`TierEvents.with_events`, wrapped around
the worker's one publisher) takes the pending events and produces them together with the
batch it is delivering, so an event goes through the same produce-with-backpressure path and
acks as results: no second producer, and nothing blocks the serving thread.
`inferstream models canary promote|rollback` runs outside a worker and publishes its one event
with the CLI's publisher (`publish_now`).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.core.messages import OutboundMessage

_KINDS = {"promote", "rollback", "hold"}


def event_record(
    event: Mapping[str, Any], share_percent: float, worker: str
) -> dict[str, Any]:
    """A TierEvent record from a canary event dict (pipeline/tiers/canary.py Canary.event)."""
    kind = str(event["event"])
    if kind not in _KINDS:
        raise ValueError(f"canary event kind {kind!r} is not one of {sorted(_KINDS)}")
    low, high = event.get("flip_rate_interval") or (0.0, 1.0)
    return {
        "stream": str(event["stream"]),
        "kind": kind,
        "stable": str(event["stable"]),
        "candidate": str(event["candidate"]),
        "share_percent": float(share_percent),
        "automatic": bool(event["automatic"]),
        "reason": str(event["reason"]),
        "pairs": int(event.get("pairs", 0)),
        "flips": int(event.get("flips", 0)),
        "flip_rate": float(event.get("flip_rate", 0.0)),
        "flip_rate_low": float(low),
        "flip_rate_high": float(high),
        "mean_abs_delta": float(event.get("mean_abs_delta", 0.0)),
        "errors": int(event.get("errors", 0)),
        "p99_ratio": float(event.get("p99_ratio", 0.0)),
        "served_by_candidate": int(event.get("served_by_candidate", 0)),
        "worker": worker,
        "decided_at": int(event.get("at_ms") or time.time_ns() // 1_000_000),
    }


class TierEvents:
    """Pending canary events of one worker, produced with the next delivered batch."""

    def __init__(self, encoder: Any, topic: str, worker: str) -> None:
        """`encoder`: an AvroSerializer (record -> framed bytes) for tier_event on `topic`."""
        self.encoder, self.topic, self.worker = encoder, topic, worker
        self._pending: collections.deque[OutboundMessage] = collections.deque()
        self.published = 0

    def add(self, event: Mapping[str, Any], share_percent: float) -> None:
        """Called by the canary when it decides (any thread): encode now, send later."""
        self._pending.append(self.message(event_record(event, share_percent, self.worker)))

    def message(self, record: Mapping[str, Any]) -> OutboundMessage:
        value = self.encoder(record)
        key = f"{record['stable']}->{record['candidate']}".encode()
        return OutboundMessage(self.topic, key, value, [("stream", record["stream"].encode())])

    def take(self) -> list[OutboundMessage]:
        out = []
        while self._pending:  # popleft is atomic: an event added meanwhile waits its turn
            out.append(self._pending.popleft())
        return out

    def with_events(
        self, deliver: Callable[[Sequence[OutboundMessage]], None]
    ) -> Callable[[Sequence[OutboundMessage]], None]:
        """`deliver`, with the pending events added to the batch being delivered."""

        def deliver_with_events(outbound: Sequence[OutboundMessage]) -> None:
            events = self.take()
            if not events:
                deliver(outbound)
                return
            try:
                deliver([*outbound, *events])
            except Exception:
                self._pending.extendleft(reversed(events))  # the batch's retry carries them
                raise
            self.published += len(events)

        return deliver_with_events

    def publish_now(self, publish: Callable[[Sequence[OutboundMessage]], None]) -> int:
        """Produce the pending events with `publish` (the CLI's publisher)."""
        events = self.take()
        if events:
            publish(events)
            self.published += len(events)
        return len(events)
