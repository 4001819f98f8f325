"""What the scorer needs of the fast-path stores; the Redis adapter (pipeline/redis/) has them.

Both degrade rather than fail: None means "store unavailable", and the batch is then scored
without it and flagged degraded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class OutputCache(Protocol):
    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None] | None:
        """Cached model output rows in order (None where missing); None when unavailable."""
        ...

    def put_many(self, keys: Sequence[str], rows: np.ndarray) -> bool: ...


class RequestIdRule(Protocol):
    def conflicts(self, ids: Sequence[str], payloads: Sequence[bytes | None]) -> list[bool] | None:
        """Per request: True when a different payload already holds its id; None when unknown."""
        ...


class AdmissionRule(Protocol):
    def refusals(self, jobs: Sequence[str | None]) -> list[str | None] | None:
        """Per request, by its job: None to score it, or why not ("job-cancelled",
        "budget-exceeded"); None for all when the job store is unavailable."""
        ...
