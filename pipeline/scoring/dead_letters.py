"""Dead letters: the original bytes and headers, plus headers saying what was wrong and where.

The value stays byte-for-byte what the producer sent, so a fixed consumer (or a human with
`inferstream tail <stream>.dlq`) can re-drive it; Kafka Connect uses the same convention.
"""

from __future__ import annotations

from typing import Literal

from pipeline.core.messages import InboundMessage, OutboundMessage

Stage = Literal["decode", "admit", "validate", "model"]

HEADER_PREFIX = "dlq."


def dead_letter(
    message: InboundMessage,
    dlq_topic: str,
    stage: Stage,
    reason: str,
    detail: str,
    worker_id: str,
    failed_at_ms: int,
) -> OutboundMessage:
    headers = [(k, v) for k, v in message.headers if not k.startswith(HEADER_PREFIX)]
    headers += [
        (f"{HEADER_PREFIX}stage", stage.encode()),
        (f"{HEADER_PREFIX}reason", reason.encode()),
        (f"{HEADER_PREFIX}detail", detail.encode()[:2000]),
        (f"{HEADER_PREFIX}source.topic", message.topic.encode()),
        (f"{HEADER_PREFIX}source.partition", str(message.partition).encode()),
        (f"{HEADER_PREFIX}source.offset", str(message.offset).encode()),
        (f"{HEADER_PREFIX}source.timestamp", str(message.timestamp_ms).encode()),
        (f"{HEADER_PREFIX}failed_at", str(failed_at_ms).encode()),
        (f"{HEADER_PREFIX}worker", worker_id.encode()),
    ]
    return OutboundMessage(dlq_topic, message.key, message.value or b"", headers)
