import struct

import pytest

from pipeline.codec import AvroDeserializer, AvroSerializer, DecodeError, SchemaCatalog
from pipeline.codec.registry import LocalRegistry, local_schema_id
from pipeline.config import REPO_ROOT

CATALOG = SchemaCatalog(REPO_ROOT / "schemas")
REGISTRY = LocalRegistry(CATALOG)

REQUEST = {
    "request_id": "r-1",
    "tenant": "acme",
    "card_id": "card-1",
    "account_id": "acct-1",
    "amount": 12.5,
    "currency": "EUR",
    "merchant_category": "5411",
    "merchant_country": "DE",
    "card_country": "DE",
    "channel": "POS",
    "event_time": 1_700_000_000_000,
    "card_txn_count_1h": 2,
    "card_avg_amount_30d": 40.0,
    "seconds_since_last_txn": 600.0,
}


def serde(name="fraud_request"):
    schema = CATALOG.latest(name)
    return AvroSerializer(REGISTRY, schema, "fraud.requests"), AvroDeserializer(REGISTRY, schema)


def test_round_trip_is_framed_with_magic_byte_and_stable_schema_id():
    ser, de = serde()
    data = ser(REQUEST)
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert schema_id == local_schema_id(CATALOG.latest("fraud_request"))
    decoded = de(data)
    assert decoded["request_id"] == "r-1"
    assert decoded["event_time"].timestamp() * 1000 == REQUEST["event_time"]


def test_schema_ids_are_stable_across_registries():
    again = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
    for version in CATALOG.all_versions():
        assert again.id_for("x-value", version) == REGISTRY.id_for("y-value", version)


def test_serializer_refuses_records_missing_a_field():
    ser, _ = serde()
    bad = dict(REQUEST)
    del bad["amount"]
    with pytest.raises(ValueError):
        ser(bad)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b"\x00\x00", "truncated"),
        (b'{"json": true}', "bad-magic"),
        (b"\x00\x00\x00\x00\x07abc", "unknown-schema"),
    ],
)
def test_bad_bytes_raise_a_typed_decode_error(payload, reason):
    _, de = serde()
    with pytest.raises(DecodeError) as info:
        de(payload)
    assert info.value.reason == reason


def test_truncated_and_padded_bodies_are_rejected():
    ser, de = serde()
    data = ser(REQUEST)
    for broken in (data[:-4], data + b"\x00\x01"):
        with pytest.raises(DecodeError) as info:
            de(broken)
        assert info.value.reason == "bad-avro"


def test_record_of_another_schema_is_wrong_schema():
    result_ser = AvroSerializer(REGISTRY, CATALOG.latest("inference_result"), "fraud.results")
    data = result_ser(
        {
            "request_id": "r",
            "key": None,
            "tenant": None,
            "model_name": "m",
            "model_version": "1",
            "score": 0.5,
            "decision": "approve",
            "served_at": 0,
            "latency_ms": 1.0,
            "degraded": False,
        }
    )
    _, de = serde()
    with pytest.raises(DecodeError) as info:
        de(data)
    assert info.value.reason == "wrong-schema"


def test_many_keeps_errors_in_place():
    ser, de = serde()
    out = de.many([ser(REQUEST), b"junk", ser(REQUEST)])
    assert isinstance(out[1], DecodeError)
    assert out[0]["card_id"] == out[2]["card_id"] == "card-1"
