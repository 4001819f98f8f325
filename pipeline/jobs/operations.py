"""What the `jobs` commands do once their flags are checked: find, follow, cancel, resume a
job, and write its results and errors. The store is pipeline.redis.jobs.JobStore."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.codec import AvroDeserializer, registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.jobs.events import header
from pipeline.jobs.exceptions import JobError, JobNotFound
from pipeline.jobs.inputs import read_inputs
from pipeline.jobs.progress import JobSnapshot
from pipeline.jobs.results import error_lines, unique_results, write_jsonl
from pipeline.jobs.spec import JobSpec, document_of
from pipeline.jobs.states import ACTIVE, TERMINAL
from pipeline.scoring.dead_letters import HEADER_PREFIX


def job_store(settings: Settings) -> Any:
    from pipeline.assembly import redis_client
    from pipeline.redis.jobs import JobStore

    return JobStore(redis_client(settings), settings.topic_namespace)


def load(settings: Settings, store: Any, job_id: str) -> JobSnapshot:
    """The job's snapshot; rebuilt from the topics when the store lost it; JobNotFound."""
    snapshot = store.snapshot(job_id)
    if snapshot is not None:
        return snapshot
    store.require(None, f"job {job_id}")
    from pipeline.jobs.rebuild import rebuild_job
    from pipeline.jobs.topics import journalled

    spec = journalled(settings, job_id).get(job_id)
    if spec is None:
        raise JobNotFound(job_id)
    topics = get_plugin(spec.stream).topics(settings.topic_namespace)
    rebuild_job(settings, store, topics, registry_from_settings(settings), job_id)
    snapshot = store.snapshot(job_id)
    if snapshot is None:
        raise JobNotFound(job_id)
    return snapshot


def follow(
    store: Any,
    job_id: str,
    on_update: Callable[[JobSnapshot], None],
    timeout_s: float | None = None,
    interval_s: float = 0.5,
) -> JobSnapshot:
    """Poll the job until it leaves the active states (or `timeout_s`); its last snapshot."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        snapshot = store.require(store.snapshot(job_id), f"job {job_id}")
        if snapshot is None:
            raise JobNotFound(job_id)
        on_update(snapshot)
        # a job over its budget is done for now once its last documents are refused too
        paused = snapshot.state == "budget_exceeded" and snapshot.counts.remaining > 0
        if snapshot.state not in ACTIVE and not paused:
            return snapshot
        if deadline is not None and time.monotonic() >= deadline:
            return snapshot
        time.sleep(interval_s)


def cancel(settings: Settings, store: Any, job_id: str) -> JobSnapshot:
    from pipeline.jobs.topics import journal

    snapshot = load(settings, store, job_id)
    if snapshot.state in TERMINAL:
        raise JobError(f"job {job_id} is already {snapshot.state}")
    spec: JobSpec = snapshot.spec  # type: ignore[assignment]
    cancelled = spec.with_changes(cancelled=True)
    journal(settings, cancelled)  # first: a cancel survives a lost Redis
    store.put_spec(cancelled, "cancelled")
    return load(settings, store, job_id)


def resume(settings: Settings, store: Any, job_id: str, budget: float | None) -> Any:
    """Send the job's unsettled documents again (from its input), with a new budget."""
    from pipeline.jobs.submit import job_plugin, prepare_spec, send

    snapshot = load(settings, store, job_id)
    spec: JobSpec = snapshot.spec  # type: ignore[assignment]
    if snapshot.state in TERMINAL:
        raise JobError(f"job {job_id} is {snapshot.state}: nothing to resume")
    source = Path(spec.source)
    if not source.exists():
        raise JobError(
            f"job {job_id}'s input {source} is gone; submit it again with --name {spec.name}", 2
        )
    plugin = job_plugin(spec.stream)
    inputs = read_inputs(source)
    new = prepare_spec(settings, plugin, inputs, spec.name, budget, spec)
    return send(settings, store, plugin, inputs, new, resumed=True)


def _decoded(
    settings: Settings, topic: str, job_id: str, since_ms: int
) -> Iterator[tuple[str, dict]]:
    from pipeline.jobs.topics import job_records

    decode = AvroDeserializer(registry_from_settings(settings))
    for message in job_records(settings, topic, job_id, since_ms):
        doc = document_of(job_id, header(message, "request_id") or "")
        if doc is not None and message.value:
            yield doc, decode(message.value)


def write_results(settings: Settings, store: Any, job_id: str, out: Path) -> int:
    spec: JobSpec = load(settings, store, job_id).spec  # type: ignore[assignment]
    topics = get_plugin(spec.stream).topics(settings.topic_namespace)
    lines = unique_results(_decoded(settings, topics.results, job_id, spec.created_at_ms))
    return write_jsonl(lines.values(), out)


def write_errors(settings: Settings, store: Any, job_id: str, out: Path) -> int:
    from pipeline.jobs.topics import job_records

    spec: JobSpec = load(settings, store, job_id).spec  # type: ignore[assignment]
    topics = get_plugin(spec.stream).topics(settings.topic_namespace)
    completed = store.require(store.completed(job_id), f"job {job_id}") or set()
    failures = []
    for message in job_records(settings, topics.dlq, job_id, spec.created_at_ms):
        doc = document_of(job_id, header(message, "request_id") or "")
        if doc is None:
            continue
        reason = header(message, f"{HEADER_PREFIX}reason") or "unknown"
        failures.append((doc, reason, header(message, f"{HEADER_PREFIX}detail") or ""))
    return write_jsonl(error_lines(failures, completed).values(), out)
