"""Provenance: the canonical model input's hash and everything else needed to replay a result."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def data_hashes(canonical_inputs: Iterable[bytes]) -> list[str]:
    """sha256 of each request's canonical input bytes (pipeline/core/canonical.py)."""
    sha256 = hashlib.sha256
    return [sha256(raw).hexdigest() for raw in canonical_inputs]
