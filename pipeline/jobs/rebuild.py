"""A job's store entries rebuilt from the topics: its spec from the journal, its counts from
the stream's results, provenance and dead letters (each record counted once, as the tracker
does)."""

from __future__ import annotations

from typing import Any

from pipeline.codec import AvroDeserializer, SchemaRegistry
from pipeline.config import Settings
from pipeline.core.topics import StreamTopics
from pipeline.jobs.events import events_from
from pipeline.jobs.exceptions import JobNotFound
from pipeline.jobs.lifecycle import settle
from pipeline.jobs.spec import JobSpec
from pipeline.jobs.topics import job_records, journalled

_CHUNK = 500


def rebuild_job(
    settings: Settings,
    store: Any,  # pipeline.redis.jobs.JobStore
    topics: StreamTopics,
    registry: SchemaRegistry,
    job_id: str,
) -> JobSpec:
    """Put the job back into the store from the topics; JobNotFound when the journal lacks it."""
    spec = journalled(settings, job_id).get(job_id)
    if spec is None:
        raise JobNotFound(job_id)
    if store.state(job_id) is None:
        store.put_spec(spec, "cancelled" if spec.cancelled else "in_progress")
    else:
        store.put_spec(spec)
    store.reset_counts(job_id)
    decode = AvroDeserializer(registry)
    for topic in (topics.results, topics.provenance, topics.dlq):
        chunk = []
        for message in job_records(settings, topic, job_id, spec.created_at_ms):
            chunk.append(message)
            if len(chunk) >= _CHUNK:
                store.apply(events_from(chunk, topics, decode))
                chunk = []
        store.apply(events_from(chunk, topics, decode))
    settle(store, job_id)
    return spec
