"""The contract between the engine and what it runs: a handler made of stages.

Each stage runs on its own thread and takes batches in order, so while one batch is in the
model the next is being decoded and the previous one delivered, and per-partition order holds.
Stage 0 receives the `Batch`; each stage's return value is the next stage's input. The last
stage must return only once every output of the batch (dead letters included) is delivered:
its return is what lets the engine commit the batch's offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Any], Any]


class BatchHandler(Protocol):
    name: str  # for logs, e.g. "score-<stream>"

    def stages(self) -> Sequence[Stage]: ...

    def close(self) -> None: ...
