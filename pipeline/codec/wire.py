"""Confluent wire framing; independent of Avro so other body formats can reuse it."""

from __future__ import annotations

import struct

from pipeline.codec.errors import DecodeError

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")  # magic byte, schema id (unsigned 32-bit, big-endian)


def frame(schema_id: int, body: bytes) -> bytes:
    return HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """Split framed bytes into (schema id, body); DecodeError if they are not framed."""
    if not data:
        raise DecodeError("empty", "no bytes (tombstone or empty value)")
    if len(data) < HEADER.size:
        raise DecodeError("truncated", f"{len(data)} bytes, shorter than the 5-byte header")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise DecodeError("bad-magic", f"first byte is {magic & 0xFF:#04x}, expected 0x00")
    return schema_id, memoryview(data)[HEADER.size :]
