"""Codec errors: a decoder's DecodeError (a reason per record), and schema catalog errors."""

from __future__ import annotations

from typing import Literal

from pipeline.errors import InferstreamError

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


class SchemaError(InferstreamError, ValueError):
    """A schema file or directory that cannot be used (misnamed, unreadable, missing)."""


class UnknownSchemaError(SchemaError, KeyError):
    """No schema of that name; the message names the known ones."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])
