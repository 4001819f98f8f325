"""Delivering a batch's outputs with librdkafka: produce them all, then wait until all are acked.

`publish` blocks (it runs as the handler's deliver stage, on its own engine thread) and returns
only when the broker has acknowledged every record (acks=all), so the caller may then ack the
batch's requests. Any record that fails raises `DeliveryFailed`.

Why not Faust's `Topic.send`: it costs 20-40 us of Python per record on the event loop
(Faust's send path, then aiokafka's partitioner and accumulator), twice per request. librdkafka
takes a record in about a microsecond and reports only failures (`delivery.report.only.error`).
Keys are partitioned with murmur2, as Faust/aiokafka and the Java client do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pipeline.config import Settings
from pipeline.core.messages import OutboundMessage
from pipeline.kafka.client_config import KafkaConfig, client_config
from pipeline.kafka.exceptions import DeliveryFailed
from pipeline.kafka.producer import produce_waiting


def producer_config(settings: Settings) -> KafkaConfig:
    return KafkaConfig(
        {
            **client_config(settings),
            "acks": "all",
            "enable.idempotence": True,  # no duplicates or reordering from retries
            "partitioner": "murmur2_random",  # the Java/aiokafka partition for a key
            "linger.ms": settings.producer_linger_ms,
            "compression.type": settings.output_compression,
            "delivery.report.only.error": True,
            "queue.buffering.max.messages": 1_000_000,
        }
    )


# librdkafka's default `message.max.bytes`; the broker's default limit is about the same
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
DEAD_LETTER_REASON = "dlq.reason"  # pipeline/scoring/dead_letters.py marks dead letters so
KEPT_OF_OVERSIZED = 64 * 1024  # bytes of an oversized dead letter's value that are kept


def fit_dead_letter(message: OutboundMessage, max_bytes: int) -> OutboundMessage:
    """A dead letter small enough to be produced: a value over the size limit is cut to its
    first 64 KiB, with headers `dlq.value.truncated` and `dlq.value.bytes` (its real size).

    Why: a poison request that decompresses to megabytes (found by tests/chaos) has a dead
    letter the producer refuses (MSG_SIZE_TOO_LARGE); the worker then exits uncommitted,
    reads the same request again and the stream stops for good. Results and provenance are
    never cut: one over the limit is a bug and fails loudly."""
    headers = message.headers
    if not any(k == DEAD_LETTER_REASON for k, _ in headers):
        return message
    overhead = 512 + len(message.key or b"") + sum(len(k) + len(v) + 8 for k, v in headers)
    if len(message.value) + overhead <= max_bytes:
        return message
    kept = max(0, min(KEPT_OF_OVERSIZED, max_bytes - overhead - 64))
    return OutboundMessage(
        message.topic,
        message.key,
        message.value[:kept],
        [
            *headers,
            ("dlq.value.truncated", b"true"),
            ("dlq.value.bytes", str(len(message.value)).encode()),
        ],
    )


class Publisher:
    def __init__(self, config: Mapping[str, Any], timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = int(config.get("message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES))
        self._errors: list[KafkaError] = []
        self._producer = Producer({**config, "on_delivery": self._on_delivery})

    @classmethod
    def from_settings(cls, settings: Settings) -> Publisher:
        return cls(producer_config(settings), settings.publish_timeout_s)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:  # only failures are reported (delivery.report.only.error)
            self._errors.append(error)

    def publish(self, messages: Sequence[OutboundMessage]) -> None:
        """Produce every message and wait for all to be delivered; DeliveryFailed if not."""
        producer = self._producer
        self._errors.clear()
        for m in messages:
            m = fit_dead_letter(m, self.max_bytes)
            produce_waiting(producer, m.topic, m.value, m.key, m.headers, self.timeout_s)
        undelivered = producer.flush(self.timeout_s)
        if undelivered or self._errors:
            first = f"; first error: {self._errors[0]}" if self._errors else ""
            raise DeliveryFailed(
                f"{undelivered} of {len(messages)} outputs undelivered after {self.timeout_s}s, "
                f"{len(self._errors)} failed{first}"
            )

    def close(self) -> None:
        self._producer.flush(5)
