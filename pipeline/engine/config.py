"""What one engine needs to know: its consumer, its topics, batching and delivery limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EngineConfig:
    name: str  # for logs and thread names, e.g. "score-<stream>"
    group_id: str
    topics: tuple[str, ...]
    consumer: Mapping[str, Any]  # librdkafka settings (bootstrap.servers, security, ...)
    batch_max: int = 256
    latency_objective_s: float = 0.025
    commit_interval_s: float = 0.5
    # a pipeline that takes no batch for this long is stalled: partitions are paused
    stall_s: float = 1.0
    # a stage that holds a batch longer than this (publish timeout, hung model) is fatal
    drain_timeout_s: float = 120.0
    # how long a stopping engine keeps retrying its last commit through a rebalance
    final_commit_timeout_s: float = 15.0
    # librdkafka's prefetch bound: with the batches in flight, what bounds the engine's memory
    prefetch_kbytes: int = 8192
    extra: Mapping[str, Any] = field(default_factory=dict)
    # a window's cost, when events differ in weight (a document's estimated tokens): a batch
    # stops before its cost passes batch_max_cost (it always takes at least one event)
    event_cost: Callable[[bytes | None], int] | None = None
    batch_max_cost: int = 0

    def __post_init__(self) -> None:
        if not self.topics:
            raise ValueError("an engine needs at least one topic")
        if self.batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {self.batch_max}")
        if self.latency_objective_s <= 0:
            raise ValueError("the latency objective must be positive")
        if self.commit_interval_s < 0 or self.stall_s <= 0 or self.drain_timeout_s <= 0:
            raise ValueError("commit interval, stall and drain timeouts must be positive")

    def consumer_config(self) -> dict[str, Any]:
        return {
            **self.consumer,
            "group.id": self.group_id,
            "enable.auto.commit": False,  # committed by the tracker, after delivery
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a new group scores what is already waiting
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.partition.eof": False,
            "queued.max.messages.kbytes": self.prefetch_kbytes,
            "fetch.wait.max.ms": 100,
            **self.extra,
        }
