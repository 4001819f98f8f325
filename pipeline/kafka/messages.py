"""The one conversion of a librdkafka message into the core's InboundMessage."""

from __future__ import annotations

from confluent_kafka import Message

from pipeline.core.messages import InboundMessage


def inbound_message(m: Message) -> InboundMessage:
    """What handlers see of a consumed record: bytes and metadata, no librdkafka object."""
    return InboundMessage(
        m.topic(),
        m.partition(),
        m.offset(),
        m.timestamp()[1],
        m.key(),
        m.value(),
        m.headers() or [],
    )
