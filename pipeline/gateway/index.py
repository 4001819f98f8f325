"""Request status by id, in Redis: pending at admission, done / failed once the worker's
result or dead letter is on its topic.

`ResultIndexer` consumes `<stream>.results` and `<stream>.dlq` of the served streams in the
gateway's own consumer group (`<namespace><app id>-gateway`: replicas share the work, and a
restarted gateway continues where its group committed) and writes, per request id,
`inferstream:gateway:<namespace>:req:<id>` = JSON with a TTL. Offsets are committed only after
the index write succeeded: with Redis down the indexer waits and retries the same records, so
no result is lost from the index. Any gateway replica answers a poll from Redis alone.

With `limits` it also consumes `<stream>.provenance` and settles each served request's cost
reservation (pipeline/gateway/limits.py `settle`): the provenance record's `cost_units`, 0
when the worker answered from its cache; a dead letter refunds its reservation. Each
reservation is settled once, so records seen again after a restart change nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message

from pipeline.codec import AvroDeserializer, DecodeError, SchemaRegistry
from pipeline.core.plugin import StreamPlugin
from pipeline.kafka.admin import TOOL_LOGGER
from pipeline.kafka.client_config import KafkaTarget, client_config
from pipeline.redis.client import DegradingRedis

log = logging.getLogger("inferstream.gateway")

PENDING, DONE, FAILED, UNKNOWN = "pending", "done", "failed", "unknown"
# records indexed between two hand-backs of the GIL (~2-3 ms of decoding and writing), and
# the pause that lets the event loop take it
INDEX_CHUNK, CHUNK_PAUSE_S = 50, 0.0005
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _undecoded(value: Any) -> Any:
    if isinstance(value, bytes):  # an Avro bytes field: shown as text
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    """A status record as JSON: the decoded result's own values (numpy arrays and scalars,
    bytes as text) in one orjson call, not a Python pass over every field first."""
    return orjson.dumps(entry, default=_undecoded, option=_JSON_OPTIONS)


class StatusStore:
    """Reads and writes of request status records (synchronous: off the event loop)."""

    def __init__(self, redis: DegradingRedis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix + "req:"
        self.channel = prefix + "settled"
        self.ttl_s = ttl_s

    def get(self, request_id: str) -> dict[str, Any] | bool | None:
        """The status record; None when unknown; False when Redis is unavailable."""
        raw = self.redis.call(lambda client: client.get(self.prefix + request_id) or b"")
        if raw is None:
            return False
        return json.loads(raw) if raw else None

    def put_many(self, entries: Sequence[tuple[str, Mapping[str, Any]]]) -> bool:
        encoded = [(self.prefix + rid, encode_entry(entry)) for rid, entry in entries]
        settled = "\n".join(rid for rid, entry in entries if entry.get("status") != PENDING)

        def put(client: Any) -> bool:
            pipe = client.pipeline(transaction=False)
            for name, value in encoded:
                pipe.set(name, value, ex=self.ttl_s)
            if settled:  # wakes the long polls of every gateway replica (Notifier)
                pipe.publish(self.channel, settled)
            pipe.execute()
            return True

        return bool(self.redis.call(put)) if entries else True


class ResultIndexer:
    """The consumer thread that keeps the status index (see the module doc)."""

    def __init__(
        self,
        kafka: KafkaTarget,
        group_id: str,
        plugins: Sequence[StreamPlugin],
        namespace: str,
        registry: SchemaRegistry,
        store: StatusStore,
        limits: Any = None,
    ) -> None:
        self.store = store
        self.limits = limits  # limits.Limits: settle reservations from provenance and DLQ
        self.on_cost: Any = None  # (tenant, step, units): the gateway's cost counter
        self._by_topic: dict[str, tuple[str, str, AvroDeserializer | None]] = {}
        for plugin in plugins:
            topics = plugin.topics(namespace)
            reader = registry.catalog.latest(plugin.result_schema)  # type: ignore[attr-defined]
            self._by_topic[topics.results] = (
                plugin.name,
                "results",
                AvroDeserializer(registry, reader, logical_types=False),
            )
            self._by_topic[topics.dlq] = (plugin.name, "dlq", None)
            if limits is not None:
                provenance = registry.catalog.latest("provenance_record")  # type: ignore[attr-defined]
                self._by_topic[topics.provenance] = (
                    plugin.name,
                    "provenance",
                    AvroDeserializer(registry, provenance, logical_types=False),
                )
        self._consumer = Consumer(
            {
                **client_config(kafka),  # bootstrap and the process's security settings
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",  # a new group indexes what is there already
                "partition.assignment.strategy": "cooperative-sticky",
                "logger": TOOL_LOGGER,
            }
        )
        self.assigned = threading.Event()
        self.indexed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-index", daemon=True)

    def start(self) -> ResultIndexer:
        self._consumer.subscribe(list(self._by_topic), on_assign=self._on_assign)
        self._thread.start()
        return self

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        self.assigned.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self._consumer.consume(500, 0.02)  # a result waits at most ~20 ms
            if not messages:
                continue
            for start in range(0, len(messages), INDEX_CHUNK):
                if start:
                    # a catch-up batch in bounded chunks, the GIL handed back between them:
                    # a thread busy for 500 records makes the event loop wait ~5 ms (the
                    # interpreter's switch interval) after each of its socket calls
                    time.sleep(CHUNK_PAUSE_S)
                if not self._index(messages[start : start + INDEX_CHUNK]):
                    return  # stopped while Redis was down: nothing committed, re-read later
            try:
                self._consumer.commit(asynchronous=True)
            except Exception as exc:
                log.debug("result index commit: %s", exc)

    def _index(self, messages: Sequence[Message]) -> bool:
        """Index and settle `messages`; False when stopped before Redis took them."""
        entries: list[tuple[str, dict[str, Any]]] = []
        served: list[tuple[str, float | None]] = []
        for message in messages:
            if message.error() is not None:
                if message.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("result index: %s", message.error())
                continue
            if self._by_topic[message.topic()][1] == "provenance":
                cost = self._served_cost(message)
                if cost is not None:
                    served.append(cost)
                continue
            entry = self._entry(message)
            if entry is not None:
                entries.append(entry)
                if entry[1]["status"] == FAILED and self.limits is not None:
                    served.append((entry[0], 0.0))  # a dead letter costs nothing
        # Redis down: retry, never skip a result (settling twice changes nothing)
        while not (self.store.put_many(entries) and self._settle(served)):
            if self._stop.wait(0.5):
                return False
        self.indexed += len(entries)
        return True

    def _served_cost(self, message: Message) -> tuple[str, float | None] | None:
        """(request id, what serving it cost: 0 from the worker's cache, the provenance's
        cost_units, None when unknown - the estimate stands).

        cost_units, not metered_cost_units: the served versions' price per row (both tiers
        for an escalated request) is what a tenant is charged; the metered CPU share depends
        on how full the batch was, i.e. on other tenants' traffic."""
        _, _, decode = self._by_topic[message.topic()]
        assert decode is not None
        try:
            record = decode(message.value())
        except DecodeError as exc:
            log.warning("result index: undecodable provenance on %s: %s", message.topic(), exc)
            return None
        request_id = record.get("request_id")
        if not request_id:
            return None
        if record.get("cache_hit"):
            return request_id, 0.0
        cost = record.get("cost_units") or 0.0
        return request_id, (float(cost) if cost > 0 else None)

    def _settle(self, served: Sequence[tuple[str, float | None]]) -> bool:
        if self.limits is None or not served:
            return True
        settled = self.limits.settle(served)
        if settled is None:
            return False
        if self.on_cost is not None:
            for tenant, delta in settled:
                self.on_cost(tenant, "refunded" if delta < 0 else "settled", abs(delta))
        return True

    def _entry(self, message: Message) -> tuple[str, dict[str, Any]] | None:
        stream, kind, decode = self._by_topic[message.topic()]
        headers = {k: v.decode("utf-8", "replace") for k, v in message.headers() or ()}
        request_id = headers.get("request_id")
        if kind == "dlq":
            if not request_id:
                return None
            return request_id, {
                "status": FAILED,
                "stream": stream,
                "tenant": headers.get("tenant"),
                "reason": headers.get("dlq.reason", ""),
                "detail": headers.get("dlq.detail", ""),
                "stage": headers.get("dlq.stage", ""),
            }
        assert decode is not None
        try:
            result = decode(message.value())
        except DecodeError as exc:
            log.warning("result index: undecodable result on %s: %s", message.topic(), exc)
            return None
        request_id = request_id or result.get("request_id")
        if not request_id:
            return None
        return request_id, {
            "status": DONE,
            "stream": stream,
            "tenant": result.get("tenant") or headers.get("tenant"),
            "served_from": "model",
            "result": result,
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            self._consumer.close()
        except Exception as exc:
            log.debug("result index close: %s", exc)


class Notifier:
    """Wakes long polls when their request settles, whichever replica indexed it.

    A thread subscribed to the index's Redis channel hands each published batch of request
    ids to the event loop, which sets the waiters' events. A missed message (Redis down, a
    reconnect) only delays a poll: waiters re-read the status at least once a second."""

    def __init__(self, redis: DegradingRedis, channel: str) -> None:
        self.redis = redis
        self.channel = channel
        self.waiters: dict[str, list[Any]] = {}
        self._loop: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-notify", daemon=True)

    def start(self, loop: Any) -> Notifier:
        self._loop = loop
        self._thread.start()
        return self

    def _run(self) -> None:
        pubsub = None
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.redis.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel)
                message = pubsub.get_message(timeout=0.2)
            except Exception as exc:  # Redis down: retry, the polls fall back to re-reading
                log.debug("notifier: %s", exc)
                pubsub = None
                self._stop.wait(1.0)
                continue
            if message and message.get("type") == "message":
                ids = message["data"].decode().split("\n")
                self._loop.call_soon_threadsafe(self._wake, ids)
        if pubsub is not None:
            pubsub.close()

    def _wake(self, ids: Sequence[str]) -> None:
        for request_id in ids:
            for event in self.waiters.pop(request_id, ()):
                event.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3)


def pending_entry(stream: str, tenant: str) -> str:
    return json.dumps(
        {"status": PENDING, "stream": stream, "tenant": tenant, "submitted_at": time.time()}
    )
