"""The one error type a decoder raises, carrying a machine-readable reason."""

from __future__ import annotations

from typing import Literal

DecodeReason = Literal[
    "empty",
    "bad-magic",
    "truncated",
    "unknown-schema",
    "wrong-schema",
    "bad-avro",
]


class DecodeError(ValueError):
    """Bytes that are not a valid record of the expected schema."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DecodeReason = reason
        self.detail = detail
