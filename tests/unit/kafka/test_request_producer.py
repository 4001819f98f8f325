"""RequestProducer refuses a mistyped record instead of letting fastavro coerce it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.streams.fraud.generator import TransactionGenerator


@pytest.fixture
def produced(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The values handed to librdkafka (no broker: the produce call is recorded instead)."""
    values: list[bytes] = []
    monkeypatch.setattr(
        "pipeline.kafka.producer.produce_waiting",
        lambda _producer, _topic, value, *args, **kwargs: values.append(value),
    )
    return values


def _producer(**options: Any) -> RequestProducer:
    settings = dataclasses.replace(Settings(), kafka_bootstrap="127.0.0.1:1")
    return RequestProducer(settings, stream_topics("fraud", "unit."), **options)


def _record() -> dict[str, Any]:
    return TransactionGenerator(seed=3).generate(1).records[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "12.5"), ("card_txn_count_1h", 2.7), ("currency", 978)],
)
def test_a_mistyped_field_is_refused_and_named_and_nothing_is_produced(
    produced: list[bytes], field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=f"{field}={value!r} is not"):
        _producer().send({**_record(), field: value})
    assert produced == []


def test_a_valid_record_is_produced(produced: list[bytes]) -> None:
    _producer().send(_record())
    assert len(produced) == 1


def test_records_built_by_the_project_can_skip_the_check(produced: list[bytes]) -> None:
    # fastavro coerces the float to the long 2, as it did before the check existed
    _producer(check_records=False).send({**_record(), "card_txn_count_1h": 2.7})
    assert len(produced) == 1


def test_failed_deliveries_are_counted_and_the_first_error_kept() -> None:
    from confluent_kafka import KafkaError

    from pipeline.kafka.exceptions import DeliveryFailed

    producer = _producer()
    for code in [KafkaError._MSG_TIMED_OUT] * 1000 + [KafkaError._ALL_BROKERS_DOWN]:
        producer._on_delivery(KafkaError(code), None)  # type: ignore[arg-type]
    assert producer.failed == 1001
    with pytest.raises(DeliveryFailed, match=r"0 requests undelivered, 1001 failed .*TIMED_OUT"):
        producer.flush(1)
