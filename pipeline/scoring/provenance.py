"""Provenance: the canonical model input's hash and everything else needed to replay a result."""

from __future__ import annotations

import hashlib

import numpy as np


def data_hashes(matrix: np.ndarray) -> list[str]:
    """sha256 of each row as float32 little-endian bytes: what replay recomputes and compares."""
    canonical = np.ascontiguousarray(matrix, dtype="<f4")
    width = canonical.shape[1] * 4
    raw = canonical.tobytes()
    return [hashlib.sha256(raw[i : i + width]).hexdigest() for i in range(0, len(raw), width)]
