"""One micro-batch as the engine hands it to a handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.core.messages import InboundMessage

# full: batch_max reached; deadline: cut smaller so the oldest event keeps its latency
# objective; idle: the pipeline was free and nothing more was waiting; revoke: cut because
# partitions are moving or the engine stops.
CutReason = Literal["full", "deadline", "idle", "revoke"]

TopicPartitionKey = tuple[str, int]


@dataclass(slots=True)
class Batch:
    seq: int
    messages: list[InboundMessage]
    cut: CutReason
    wait_ms: float  # from the oldest message's arrival at the engine to the cut
    cut_at: float  # time.monotonic() of the cut
    last_offsets: dict[TopicPartitionKey, int]  # highest offset per partition in this batch
    busy_s: float = 0.0  # service time of the handler's stages, summed (the cost model's input)
    stage_s: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.messages)
