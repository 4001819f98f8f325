"""Provenance: the canonical model input's hash and everything else needed to replay a result."""

from __future__ import annotations

import hashlib

import numpy as np


def canonical_bytes(row: np.ndarray) -> bytes:
    """The bytes that identify one model input: float32 little-endian, in feature order."""
    return np.ascontiguousarray(row, dtype="<f4").tobytes()


def data_hashes(matrix: np.ndarray) -> list[str]:
    """sha256 of each row as float32 little-endian bytes: what replay recomputes and compares."""
    canonical = np.ascontiguousarray(matrix, dtype="<f4")
    if canonical.ndim != 2:
        raise ValueError(f"expected a 2-d matrix, got shape {canonical.shape}")
    width = canonical.shape[1] * 4
    raw = canonical.tobytes()
    return [hashlib.sha256(raw[i : i + width]).hexdigest() for i in range(0, len(raw), width)]
