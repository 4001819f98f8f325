"""The scoring agent: `<stream>.requests` in micro-batches -> results, provenance, dead letters.

Acknowledgement rule: a batch's requests are acked only after every one of its outputs is
delivered (the runner returns after delivery). The batcher's acks are manual, so a batch that
was not delivered is never acked, whether the agent fails or is stopped; if outputs cannot be
delivered the process exits hard, so the batch is consumed again after a restart.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import faust
from faust.types import EventT

from agents.batcher import DeadlineBatcher
from pipeline.scoring import InboundMessage
from pipeline.scoring.runner import ScoringRunner
from pipeline.streams import StreamSpec

log = logging.getLogger("inferstream.agent")


@dataclass
class AgentStats:
    """Counters the readiness/summary logs and the demo read."""

    batches: int = 0
    received: int = 0
    scored: int = 0
    dead_lettered: int = 0
    cache_hits: int = 0
    batch_sizes: list[int] = field(default_factory=list)


def to_inbound(event: EventT) -> InboundMessage:
    message = event.message
    headers = message.headers
    if isinstance(headers, dict):
        headers = list(headers.items())
    return InboundMessage(
        message.topic,
        message.partition,
        message.offset,
        int(message.timestamp * 1000),
        message.key,
        message.value,
        headers or [],  # read-only from here on: no copy
    )


def register_scoring_agent(
    app: faust.App,
    spec: StreamSpec,
    runner: ScoringRunner,
    batch_max: int,
    window_s: float,
    stats: AgentStats | None = None,
) -> AgentStats:
    """`runner` must deliver the outputs (ScoringRunner(..., deliver=Publisher.publish))."""
    if runner.deliver is None:
        raise ValueError("the scoring agent needs a runner that delivers its outputs")
    stats = stats or AgentStats()
    source = app.topic(spec.requests, key_serializer="raw", value_serializer="raw")

    @app.agent(source, name=f"score-{spec.name}", concurrency=1)
    async def score(stream: faust.StreamT) -> None:
        async with DeadlineBatcher(stream, batch_max, window_s) as batcher:
            while True:
                events = await batcher.next_batch()
                messages = [to_inbound(event) for event in events]
                try:
                    scored = await runner.score(messages)  # returns once outputs are delivered
                except Exception:
                    # Acking would lose a batch whose outputs may be missing: exit, unacked.
                    log.critical(
                        "batch of %d could not be published; exiting so it is retried after "
                        "restart",
                        len(messages),
                        exc_info=True,
                    )
                    logging.shutdown()
                    os._exit(70)
                await batcher.ack(events)
                stats.batches += 1
                stats.received += len(messages)
                stats.scored += scored.scored
                stats.dead_lettered += scored.dead_lettered
                stats.cache_hits += scored.cache_hits
                stats.batch_sizes.append(len(messages))
                if len(stats.batch_sizes) > 10_000:
                    del stats.batch_sizes[:5_000]

    return stats
