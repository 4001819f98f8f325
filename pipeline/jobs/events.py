"""What the stream's outputs say about jobs: one `JobEvent` per result, cache hit, dead letter.

Results and dead letters carry the request's `job` header (the worker copies it: the plug-in's
passed headers) and `request_id` = `<job id>/<document id>`, so a job's outputs are attributed
from headers alone; results are decoded only for the tokens they cost, provenance records only
for `cache_hit`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.core.messages import InboundMessage
from pipeline.core.topics import StreamTopics
from pipeline.jobs.spec import JOB_HEADER, document_of
from pipeline.scoring.dead_letters import HEADER_PREFIX

EventKind = Literal["done", "cached", "failed", "deferred", "cancelled"]

# dead-letter reasons of the admission rule (pipeline/redis/jobs.py): not failures
REFUSED_BUDGET = "budget-exceeded"
REFUSED_CANCELLED = "job-cancelled"
_REFUSALS: dict[str, EventKind] = {REFUSED_BUDGET: "deferred", REFUSED_CANCELLED: "cancelled"}


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    job: str
    doc: str
    tokens: int = 0
    info: str = ""  # failed: JSON {"reason", "detail"}


Decode = Callable[[bytes], Mapping[str, Any]]


def header(message: InboundMessage, name: str) -> str | None:
    value = message.header(name)
    return None if value is None else value.decode("utf-8", errors="replace")


def events_from(
    messages: Iterable[InboundMessage], topics: StreamTopics, decode: Decode
) -> list[JobEvent]:
    """The job events of a batch of results, provenance records and dead letters."""
    events: list[JobEvent] = []
    for message in messages:
        job = header(message, JOB_HEADER)
        request = header(message, "request_id")
        if not job or not request:
            continue  # not a job's document (a live request of the same stream)
        doc = document_of(job, request)
        if doc is None:
            continue
        event = _event(message, topics, decode, job, doc)
        if event is not None:
            events.append(event)
    return events


def _event(
    message: InboundMessage, topics: StreamTopics, decode: Decode, job: str, doc: str
) -> JobEvent | None:
    if message.topic == topics.results:
        value = decode(message.value or b"")
        return JobEvent("done", job, doc, tokens=int(value.get("tokens") or 0))
    if message.topic == topics.provenance:
        value = decode(message.value or b"")
        return JobEvent("cached", job, doc) if value.get("cache_hit") else None
    if message.topic == topics.dlq:
        reason = header(message, f"{HEADER_PREFIX}reason") or "unknown"
        kind = _REFUSALS.get(reason)
        if kind is not None:
            return JobEvent(kind, job, doc)
        detail = header(message, f"{HEADER_PREFIX}detail") or ""
        return JobEvent("failed", job, doc, info=failure_info(reason, detail))
    return None


def failure_info(reason: str, detail: str) -> str:
    return json.dumps({"reason": reason, "detail": detail}, separators=(",", ":"))
