"""The gateway's producer against the real broker: a small submission is sent from the event
loop (no sender thread involved), a big one through the sender thread, each answered once
the broker acknowledged every record; a record the schema refuses fails its submission with
the reason and is never produced."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.gateway.producer import INLINE_RECORDS, GatewayProducer
from tests.integration.helpers import TopicTally, fraud_topics
from tests.integration.test_gateway import transaction

pytestmark = pytest.mark.integration


def _request(i: int, **changes: Any) -> dict[str, Any]:
    """A request as the gateway's intake hands it to the producer: id and tenant filled in."""
    return transaction(i, request_id=f"p-{uuid.uuid4().hex[:12]}", tenant="acme", **changes)


def test_small_submissions_skip_the_sender_thread_and_big_ones_use_it(settings: Settings):
    topics = fraud_topics(settings.topic_namespace)
    producer = GatewayProducer(settings, {"fraud": topics})
    small = [_request(i) for i in range(2)]
    big = [_request(i) for i in range(INLINE_RECORDS + 4)]
    tally = TopicTally(settings.kafka_bootstrap, topics.requests)
    try:
        with tally:

            async def run() -> None:
                await producer.send("fraud", small, {"tenant": "acme"})
                assert not producer._sender._threads  # acknowledged, sent on the loop
                await producer.send("fraud", big, {"tenant": "acme"})
                assert len(producer._sender._threads) == 1

            asyncio.run(run())
            assert tally.wait_distinct(len(small) + len(big), timeout=30)
            assert set(tally.counts()) == {r["request_id"] for r in small + big}
            assert tally.duplicates() == 0
    finally:
        producer.close()


def test_a_record_the_schema_refuses_fails_its_submission_and_is_not_produced(
    settings: Settings,
):
    topics = fraud_topics(settings.topic_namespace)
    producer = GatewayProducer(settings, {"fraud": topics})
    good, bad = _request(1), _request(2, channel="TELEPATHY")  # not one of the enum symbols
    tally = TopicTally(settings.kafka_bootstrap, topics.requests)
    try:
        with tally:

            async def run() -> str:
                await producer.send("fraud", [good], {"tenant": "acme"})
                with pytest.raises(RuntimeError) as refused:
                    await producer.send("fraud", [bad], {"tenant": "acme"})
                return str(refused.value)

            reason = asyncio.run(run())
            assert "TELEPATHY" in reason or "channel" in reason.lower(), reason
            assert tally.wait_distinct(1, timeout=30) and tally.wait_quiet(1.0, timeout=10)
            assert set(tally.counts()) == {good["request_id"]}
    finally:
        producer.close()
