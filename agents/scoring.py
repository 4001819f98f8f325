"""The scoring agent: `<stream>.requests` in micro-batches -> results, provenance, dead letters.

Acknowledgement rule: `take_events` acks the batch when the loop body finishes, so the body
never raises: it awaits delivery of every output first, and if outputs cannot be delivered
the process exits hard, before the ack, so the batch is consumed again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import faust
from faust.types import EventT

from pipeline.scoring import InboundMessage, OutboundMessage
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
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000),
        key=message.key,
        value=message.value,
        headers=list(headers or ()),
    )


def register_scoring_agent(
    app: faust.App,
    spec: StreamSpec,
    runner: ScoringRunner,
    batch_max: int,
    window_s: float,
    stats: AgentStats | None = None,
) -> AgentStats:
    stats = stats or AgentStats()
    source = app.topic(spec.requests, key_serializer="raw", value_serializer="raw")
    outputs = {
        name: app.topic(name, key_serializer="raw", value_serializer="raw")
        for name in (spec.results, spec.provenance, spec.dlq)
    }

    async def publish(messages: Sequence[OutboundMessage]) -> None:
        pending = [
            await outputs[m.topic].send(key=m.key, value=m.value, headers=m.headers)
            for m in messages
        ]
        await asyncio.gather(*pending)  # delivered (acks=all), not just buffered

    @app.agent(source, name=f"score-{spec.name}", concurrency=1)
    async def score(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch_max, within=window_s):
            messages = [to_inbound(event) for event in events]
            try:
                scored = await runner.score(messages)
                await publish(scored.outbound)
            except Exception:
                # Returning would ack a batch whose outputs may be missing: exit before the ack.
                log.critical(
                    "batch of %d could not be published; exiting so it is retried after restart",
                    len(messages),
                    exc_info=True,
                )
                logging.shutdown()
                os._exit(70)
            stats.batches += 1
            stats.received += len(messages)
            stats.scored += scored.scored
            stats.dead_lettered += scored.dead_lettered
            stats.cache_hits += scored.cache_hits
            stats.batch_sizes.append(len(messages))
            if len(stats.batch_sizes) > 10_000:
                del stats.batch_sizes[:5_000]

    return stats
