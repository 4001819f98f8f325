"""Canonical input bytes: what `data_hash` in provenance is the sha256 of, per input kind.

A plug-in names the function for its model input; replay recomputes the inputs with the same
preprocessing version and compares hashes, so the bytes must depend on the input values alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _rows(matrix: np.ndarray, dtype: str) -> list[bytes]:
    canonical = np.ascontiguousarray(matrix, dtype=dtype)
    if canonical.ndim != 2:
        raise ValueError(f"expected a 2-d input matrix, got shape {canonical.shape}")
    width = canonical.shape[1] * canonical.itemsize
    raw = canonical.tobytes()
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def float32_rows(matrix: np.ndarray) -> list[bytes]:
    """Numeric feature rows: float32 little-endian, in feature order."""
    return _rows(matrix, "<f4")


def int64_rows(matrix: np.ndarray) -> list[bytes]:
    """Token ids (padded rows): int64 little-endian, padding included."""
    return _rows(matrix, "<i8")


def utf8_texts(texts: Sequence[str]) -> list[bytes]:
    """Raw text inputs: UTF-8, as given."""
    return [text.encode("utf-8") for text in texts]
