"""What a request carries reaches its outputs: its tenant, its trace context and its age.

Fraud requests are produced with W3C `traceparent` and `tenant` headers, a `tenant` field,
and a record timestamp AGE_MS in the past; a worker process scores them, and the results and
provenance topics are read back as a consumer would. Every check fails if the value it checks
were dropped, emptied or set to 0: the tenant field of the result, the headers of both
outputs, latency_ms (>= the record's age), queue_wait_ms (> 0, >= the age, <= latency_ms) and
source_timestamp (the record's timestamp).

At the end, the session's own cleanup: what the tests create on the broker is tracked and
deleted when the session ends (`KafkaNames`, the `kafka_names` fixture).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import Settings
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.helpers import (
    KafkaNames,
    RequestSender,
    WorkerProcess,
    fraud_topics,
    new_traceparent,
    read_all,
    values,
    wait_for,
)

pytestmark = pytest.mark.integration

AGE_MS = 2000  # how old each request's record timestamp is when it is produced
SLACK_MS = 5  # clock granularity between the test's stamp and the worker's
LATENCY_BOUND_MS = AGE_MS + 120_000  # generous: a loaded machine, a worker slow to start
REQUESTS = 40


@dataclass(frozen=True)
class Sent:
    tenant: str
    traceparent: str
    timestamp_ms: int


def _ms(value: Any) -> int:
    """A timestamp-millis field as decoded (a datetime) in milliseconds since the epoch."""
    return round(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


def _produce_aged(settings: Settings, n: int) -> dict[str, Sent]:
    """`n` requests, each with its own tenant and trace, stamped AGE_MS before it is sent."""
    sent: dict[str, Sent] = {}
    records = TransactionGenerator(seed=77).generate(n).records
    with RequestSender(settings) as sender:
        for index, record in enumerate(records):
            request_id = str(uuid.uuid4())  # fresh ids: never reused with another payload
            tenant = f"tenant-{index % 4}-{uuid.uuid4().hex[:6]}"
            trace = new_traceparent()
            stamp = time.time_ns() // 1_000_000 - AGE_MS
            sender.send(
                {**record, "request_id": request_id, "tenant": tenant},
                headers={"traceparent": trace, "tenant": tenant},
                timestamp_ms=stamp,
            )
            sent[request_id] = Sent(tenant, trace, stamp)
    return sent


def _headers_as_sent(headers: dict[str, bytes], request_id: str, sent: Sent) -> None:
    assert headers.get("request_id") == request_id.encode(), headers
    assert headers.get("traceparent") == sent.traceparent.encode(), headers
    assert headers.get("tenant") == sent.tenant.encode(), headers


def test_tenant_trace_context_and_request_age_reach_results_and_provenance(
    settings: Settings, worker: WorkerProcess
) -> None:
    topics = fraud_topics(settings.topic_namespace)
    sent = _produce_aged(settings, REQUESTS)

    # the requests kept the timestamps they were given (CreateTime), so their age is known
    requests = read_all(settings, topics.requests, expected=REQUESTS)
    assert {r.headers["request_id"].decode(): r.timestamp_ms for r in requests} == {
        request_id: s.timestamp_ms for request_id, s in sent.items()
    }

    results = read_all(settings, topics.results, expected=REQUESTS)
    provenance = read_all(settings, topics.provenance, expected=REQUESTS)
    if len(results) < REQUESTS or len(provenance) < REQUESTS:
        dead = values(read_all(settings, topics.dlq, idle_timeout=2))
        pytest.fail(
            f"{len(results)} results, {len(provenance)} provenance records of {REQUESTS}; "
            f"dead letters: {dead[:3]}\n" + "\n".join(list(worker.lines)[-30:])
        )
    result_by_id = {r.value["request_id"]: r for r in results if r.value is not None}
    provenance_by_id = {p.value["request_id"]: p for p in provenance if p.value is not None}
    assert set(result_by_id) == set(sent) == set(provenance_by_id)

    for request_id, request in sent.items():
        result, record = result_by_id[request_id], provenance_by_id[request_id]
        assert result.value is not None and record.value is not None
        # the tenant field of the request, on the result
        assert result.value["tenant"] == request.tenant
        # trace context and tenant headers, unchanged, and the request id, on both outputs
        _headers_as_sent(result.headers, request_id, request)
        _headers_as_sent(record.headers, request_id, request)
        # latency_ms: from the record's timestamp (AGE_MS old when sent) to served_at
        latency = result.value["latency_ms"]
        assert AGE_MS <= latency < LATENCY_BOUND_MS, (request_id, latency)
        served_at = _ms(result.value["served_at"])
        assert abs(latency - (served_at - request.timestamp_ms)) <= 1, (latency, served_at)
        # provenance: the record's own timestamp, and the wait before inference began
        assert _ms(record.value["source_timestamp"]) == request.timestamp_ms
        queue_wait = record.value["queue_wait_ms"]
        assert queue_wait > 0, (request_id, queue_wait)
        assert queue_wait >= AGE_MS - SLACK_MS, (request_id, queue_wait)
        assert queue_wait <= latency, (request_id, queue_wait, latency)


# -- the suite's own cleanup of the broker --------------------------------------------------


def _create_topics(admin: AdminClient, names: list[str]) -> None:
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in names]).values():
        future.result(30)
    assert wait_for(lambda: set(names) <= set(admin.list_topics(timeout=10).topics), 30)


def _commit_group(bootstrap: str, group: str, topic: str) -> None:
    """Make consumer group `group` exist on the broker: commit an offset for it."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()


def _listing(admin: AdminClient) -> tuple[set[str], set[str]]:
    groups = admin.list_consumer_groups(request_timeout=15).result(30).valid
    return set(admin.list_topics(timeout=15).topics), {g.group_id for g in groups}


def test_each_test_namespace_is_tracked_for_deletion(
    kafka_names: KafkaNames, namespace: str
) -> None:
    assert namespace in kafka_names.prefixes  # its topics
    assert f"inferstream-{namespace.rstrip('.')}" in kafka_names.prefixes  # its groups


def test_cleanup_deletes_the_tracked_topics_and_groups_and_nothing_else(
    stack, kafka_names: KafkaNames
) -> None:
    """A tracker on the session's broker: what it tracks is gone after `cleanup()` (topics
    and consumer groups, listed before and after); an untracked topic, and under a fixed
    prefix (`track_if_new`) what existed before the tracker, are still there."""
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    run = uuid.uuid4().hex[:8]
    ours, fixed, other = f"c{run}.", f"fixed{run}.", f"other{run}.fraud.requests"
    group_prefix = f"inferstream-c{run}"
    for prefix in (ours, group_prefix, fixed, other):
        kafka_names.track(prefix)  # whatever this test leaves is deleted at the session's end
    # before the tracker: a fixed-name topic and group that are not the tracker's to delete
    existing = f"{fixed}fraud.requests"
    _create_topics(admin, [existing, other])
    _commit_group(stack.bootstrap, f"{fixed}old-group", existing)

    tracker = KafkaNames(stack.bootstrap)
    tracker.track(ours)
    tracker.track(group_prefix)
    tracker.track_if_new(fixed)
    new_topics = [f"{ours}fraud.requests", f"{ours}fraud.results", f"{fixed}fraud.results"]
    _create_topics(admin, new_topics)
    new_groups = [group_prefix, f"{group_prefix}-drift", f"{fixed}new-group"]
    for group in new_groups:
        _commit_group(stack.bootstrap, group, new_topics[0])

    topics_before, groups_before = _listing(admin)
    assert set(new_topics) | {existing, other} <= topics_before
    assert set(new_groups) | {f"{fixed}old-group"} <= groups_before
    assert tracker.created() == (sorted(new_topics), sorted(new_groups))

    report = tracker.cleanup()

    assert report.left == []
    assert (report.topics, report.groups) == (sorted(new_topics), sorted(new_groups))
    topics_after, groups_after = _listing(admin)
    assert not set(new_topics) & topics_after
    assert not set(new_groups) & groups_after
    assert {existing, other} <= topics_after
    assert f"{fixed}old-group" in groups_after
    assert tracker.created() == ([], [])
