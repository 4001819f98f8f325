"""Test helpers for integration tests: topic readers (and the worker process, re-exported)."""

from __future__ import annotations

import time
from typing import Any

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.kafka.reader import ReadRecord, read_topic
from pipeline.worker_process import WorkerProcess

__all__ = ["WorkerProcess", "read_all", "values"]


def read_all(
    settings: Settings,
    topic: str,
    expected: int | None = None,
    idle_timeout: float = 20.0,
    deadline_s: float = 180.0,
) -> list[ReadRecord]:
    """Records of `topic` from the beginning, until `expected` arrived or nothing new came."""
    registry = registry_from_settings(settings)
    records: list[ReadRecord] = []
    deadline = time.monotonic() + deadline_s
    for record in read_topic(
        settings.kafka_bootstrap,
        topic,
        registry,
        "beginning",
        max_records=None,
        idle_timeout=idle_timeout,
    ):
        records.append(record)
        if (expected is not None and len(records) >= expected) or time.monotonic() > deadline:
            break
    return records


def values(records: list[ReadRecord]) -> list[dict[str, Any]]:
    assert all(r.value is not None for r in records), [str(r.error) for r in records if r.error]
    return [r.value for r in records]  # type: ignore[misc]
