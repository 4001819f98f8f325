"""Producing inference requests: idempotent, keyed by entity, ids and trace headers filled in."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pipeline.codec import AvroSerializer, registry_from_settings
from pipeline.codec.checks import field_problems
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.core.topics import StreamTopics
from pipeline.kafka.admin import TOOL_LOGGER
from pipeline.kafka.client_config import client_config
from pipeline.kafka.exceptions import DeliveryFailed


def produce_waiting(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    headers: list[tuple[str, bytes]],
    timeout_s: float = 60.0,
    **kwargs: Any,
) -> None:
    """`produce`, waiting for room when librdkafka's local queue is full instead of failing.

    The one produce-with-backpressure of the project (publisher, request producer). The wait is
    bounded: a queue that stays full for `timeout_s` (no broker is taking records) raises
    DeliveryFailed rather than blocking the caller for good.
    """
    deadline = None
    while True:
        try:
            producer.produce(topic, value, key, headers=headers, **kwargs)
            return
        except BufferError:  # let deliveries drain, then retry
            now = time.monotonic()
            deadline = deadline or now + timeout_s
            if now >= deadline:
                raise DeliveryFailed(
                    f"producer queue full for {timeout_s:g}s: no broker is taking records "
                    f"for {topic}"
                ) from None
            producer.poll(0.05)


def traceparent() -> str:
    """A W3C trace-context header value for a new trace."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def with_request_id(record: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if not out.get("request_id"):
        out["request_id"] = str(uuid.uuid4())
    return out


class RequestProducer:
    """Sends requests of one stream; call `flush()` (or use as a context manager) to finish."""

    def __init__(
        self,
        settings: Settings,
        stream: StreamTopics,
        *,
        check_records: bool = True,
        **config: Any,
    ) -> None:
        """`check_records=False` skips the per-field type check (~10 us a record) for records
        this project built itself (the synthetic generators); a caller's records keep it."""
        self.stream = stream
        self.check_records = check_records
        self.plugin = get_plugin(stream.name)
        registry = registry_from_settings(settings)
        schema = registry.catalog.latest(self.plugin.request_schema)  # type: ignore[attr-defined]
        self.schema = schema
        self.serialize = AvroSerializer(registry, schema, stream.requests)
        # fields a record may leave out: their schema defaults (a typo'd field still fails)
        self.defaults = {
            f["name"]: f["default"] for f in schema.definition["fields"] if "default" in f
        }
        self._producer = Producer(
            {
                **client_config(settings),  # bootstrap and security settings
                "enable.idempotence": True,  # no duplicates or reordering from producer retries
                "linger.ms": 5,
                "compression.type": "lz4",
                # a missing topic is an error, never one created with the broker's defaults
                "allow.auto.create.topics": False,
                "logger": TOOL_LOGGER,  # librdkafka's log lines: not raw on stderr
                **config,
            }
        )
        self.delivered = 0
        # failed deliveries: a count and the first error (a long outage fails every record,
        # and a list of each would grow without bound in a long-running producer)
        self.failed = 0
        self.first_error: str | None = None

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = str(error)

    def send(
        self,
        record: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        timestamp_ms: int | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> str:
        """Queue one request; returns its request_id. Raises ValueError if it breaks the schema.

        `headers` override the defaults; `timestamp_ms` sets the record timestamp (e.g. an
        event's own time when replaying history), else the producer's clock; `on_delivery`
        is also called with this record's delivery report (a report carries no headers)."""
        record = with_request_id({**self.defaults, **record})
        if self.check_records:
            problems = field_problems(record, self.schema)
            if problems:
                raise ValueError(f"request {record['request_id']}: {'; '.join(problems)}")
        value = self.serialize(record)
        key = record.get(self.plugin.key_field)
        base = {"request_id": record["request_id"], "traceparent": traceparent()}
        tenant = self.plugin.tenant_field
        if tenant and record.get(tenant):
            base["tenant"] = str(record[tenant])
        all_headers = [(k, v.encode()) for k, v in {**base, **(headers or {})}.items()]
        produce_waiting(
            self._producer,
            self.stream.requests,
            value,
            None if key is None else str(key).encode(),
            all_headers,
            on_delivery=self._on_delivery if on_delivery is None else self._reporting(on_delivery),
            **({} if timestamp_ms is None else {"timestamp": timestamp_ms}),
        )
        self._producer.poll(0)
        return str(record["request_id"])

    def _reporting(
        self, callback: Callable[[KafkaError | None, Message], None]
    ) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            self._on_delivery(error, message)
            callback(error, message)

        return report

    def send_many(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        return [self.send(record) for record in records]

    def flush(self, timeout: float = 60) -> None:
        remaining = self._producer.flush(timeout)
        if remaining or self.failed:
            raise DeliveryFailed(
                f"{remaining} requests undelivered, {self.failed} failed"
                + (f" (first error: {self.first_error})" if self.first_error else "")
            )

    def __enter__(self) -> RequestProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()
