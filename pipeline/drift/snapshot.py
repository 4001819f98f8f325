"""Detector state as bytes: an uncompressed npz of arrays plus one JSON header."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

FORMAT = "inferstream.drift.snapshot/1"


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    if "__header__" in arrays:
        raise ValueError("reserved array name")
    buffer = io.BytesIO()
    encoded = np.frombuffer(json.dumps({"format": FORMAT, **header}).encode(), dtype=np.uint8)
    # npz without pickles: restoring never executes code from the blob
    np.savez(buffer, __header__=encoded, **arrays)
    return buffer.getvalue()


def unpack(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"not a drift detector snapshot: {exc}") from None
    raw = arrays.pop("__header__", None)
    if raw is None:
        raise ValueError("not a drift detector snapshot: no header")
    header = json.loads(raw.tobytes().decode())
    if header.get("format") != FORMAT:
        raise ValueError(f"unsupported snapshot format {header.get('format')!r}")
    return header, arrays
