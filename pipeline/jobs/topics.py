"""Reading what the topics hold about a job (through pipeline/kafka), and the jobs journal.

The journal is the compacted topic `<ns>jobs`, one record per job keyed by its id whose value
is the JobSpec as JSON: the latest record per key is the job, so the job store can be rebuilt
from it and from the stream's results and dead letters when Redis loses its data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from pipeline.config import Settings
from pipeline.core.messages import InboundMessage, OutboundMessage
from pipeline.jobs.spec import JOB_HEADER, JobSpec
from pipeline.kafka.admin import cluster_metadata, create_topic
from pipeline.kafka.exceptions import RangeError
from pipeline.kafka.publisher import Publisher
from pipeline.kafka.ranges import read_ranges, resolve_times, whole_partitions

# outputs are stamped by the workers' clocks, the job by the submitter's: allow them to differ
CLOCK_SLACK_MS = 5 * 60 * 1000
JOURNAL_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


def journal_topic(settings: Settings) -> str:
    return f"{settings.topic_namespace}jobs"


def ensure_journal(settings: Settings) -> str:
    topic = journal_topic(settings)
    if topic not in cluster_metadata(settings.kafka_bootstrap).topics:
        # one partition: the journal is small, and one partition keeps its records in order
        create_topic(settings.kafka_bootstrap, topic, 1, settings.topic_replication, JOURNAL_CONFIG)
    return topic


def journal(settings: Settings, spec: JobSpec, publisher: Publisher | None = None) -> None:
    """Write the spec to the journal, delivered (acks=all) before this returns."""
    publisher = publisher or Publisher.from_settings(settings)
    message = OutboundMessage(
        journal_topic(settings), spec.job_id.encode(), spec.to_json().encode(), []
    )
    publisher.publish([message])


def journalled(settings: Settings, job_id: str | None = None) -> dict[str, JobSpec]:
    """The journal's latest spec per job (only `job_id`'s when given); {} without a journal."""
    topic = journal_topic(settings)
    if topic not in cluster_metadata(settings.kafka_bootstrap).topics:
        return {}
    specs: dict[str, JobSpec] = {}
    wanted = None if job_id is None else job_id.encode()
    for message in read_whole(settings, topic):
        if message.key is None or (wanted is not None and message.key != wanted):
            continue
        if message.value:  # a tombstone (None) deletes
            specs[message.key.decode()] = JobSpec.from_json(message.value)
        else:
            specs.pop(message.key.decode(), None)
    return specs


def read_whole(settings: Settings, topic: str) -> Iterator[InboundMessage]:
    """Every retained record of `topic`, up to its end when the read starts."""
    coverage = whole_partitions(settings.kafka_bootstrap, topic)
    for batch in read_ranges(settings.kafka_bootstrap, topic, coverage):
        yield from batch


def job_records(
    settings: Settings, topic: str, job_id: str, since_ms: int = 0
) -> Iterator[InboundMessage]:
    """The records of `topic` whose `job` header names `job_id`, read from `since_ms` (the
    job's creation: its outputs come after it), found with the broker's time index."""
    wanted = job_id.encode()
    if since_ms <= 0:
        messages = read_whole(settings, topic)
    else:
        try:
            now_ms = int(time.time() * 1000)
            coverage = resolve_times(
                settings.kafka_bootstrap, topic, since_ms - CLOCK_SLACK_MS, now_ms + 1
            )
        except RangeError:
            return  # nothing written since: no outputs yet
        messages = (m for batch in read_ranges(settings.kafka_bootstrap, topic, coverage)
                    for m in batch)  # fmt: skip
    for message in messages:
        if message.header(JOB_HEADER) == wanted:
            yield message
