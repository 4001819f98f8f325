"""Fuzzing the codec (Confluent wire format + Avro): arbitrary bytes, truncated and mutated
valid records, huge lengths and counts inside the Avro body. Every input either decodes to a
record or raises DecodeError with one of the documented reasons; nothing else escapes, and
nothing hangs (deadlines in conftest.py)."""

from __future__ import annotations

import io
import typing
from typing import Any

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from pipeline.codec import AvroDeserializer, DecodeError, registry_from_settings
from pipeline.codec.errors import DecodeReason
from pipeline.codec.registry import local_schema_id
from pipeline.codec.wire import frame
from pipeline.config import Settings
from tests.fuzz.avro_strategies import values, zigzag

REGISTRY = registry_from_settings(Settings())
VERSIONS = REGISTRY.catalog.all_versions()  # type: ignore[attr-defined]
REASONS = set(typing.get_args(DecodeReason))
IDS = [local_schema_id(v) for v in VERSIONS]
# the decoders the pipeline uses: no reader schema; the worker's (reader = latest request
# schema, logical types off); tail's (logical types on)
DECODERS = [
    AvroDeserializer(REGISTRY),
    AvroDeserializer(REGISTRY, logical_types=False),
    *(
        AvroDeserializer(REGISTRY, REGISTRY.catalog.latest(name), logical_types=False)  # type: ignore[attr-defined]
        for name in ("fraud_request", "docs_request")
    ),
]


def check(data: bytes | None) -> None:
    """The property: a record (a dict) or a DecodeError with a known reason, per decoder."""
    for decode in DECODERS:
        try:
            record = decode(data)
        except DecodeError as exc:
            assert exc.reason in REASONS, exc
            assert exc.detail and "\n" not in str(exc), repr(str(exc))
        else:
            assert isinstance(record, dict)


def encode(version: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, version.parsed, record, strict=True)
    return frame(local_schema_id(version), buffer.getvalue())


@st.composite
def valid(draw: st.DrawFn) -> tuple[Any, bytes]:
    version = draw(st.sampled_from(VERSIONS))
    return version, encode(version, draw(values(version.parsed)))


@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@given(st.sampled_from([*IDS, 0, 1, 2**32 - 1]), st.binary(max_size=300))
def test_arbitrary_bodies_behind_known_schema_ids(schema_id: int, body: bytes) -> None:
    check(frame(schema_id, body))


@given(valid())
def test_valid_records_decode(item: tuple[Any, bytes]) -> None:
    _, data = item
    # without a reader schema every version decodes as itself; with logical types on, a
    # timestamp-millis outside datetime's years 1-9999 is rejected (bad-avro: OverflowError),
    # which check() allows
    assert isinstance(DECODERS[1](data), dict)
    check(data)


@given(valid(), st.data())
def test_truncated_valid_records(item: tuple[Any, bytes], data: st.DataObject) -> None:
    _, encoded = item
    cut = data.draw(st.integers(0, len(encoded) - 1))
    check(encoded[:cut])


@given(
    valid(),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete"]), st.integers(0), st.integers(0, 255)
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_mutated_valid_records(item: tuple[Any, bytes], edits: list[tuple[str, int, int]]) -> None:
    _, encoded = item
    data = bytearray(encoded)
    for op, where, byte in edits:
        at = where % (len(data) + 1)
        if op == "insert":
            data.insert(at, byte)
        elif data and at < len(data):
            if op == "flip":
                data[at] ^= byte or 1
            else:
                del data[at]
    check(bytes(data))


HUGE = st.one_of(
    st.integers(2**31 - 8, 2**31 + 8),
    st.integers(2**62, 2**63 - 1),
    st.integers(2**63, 2**80),  # more than a long holds
    st.integers(-(2**63), -1),  # negative lengths / block counts
)


@given(valid(), st.data(), HUGE, st.binary(max_size=64))
def test_huge_lengths_and_counts_inside_the_body(
    item: tuple[Any, bytes], data: st.DataObject, huge: int, tail: bytes
) -> None:
    """A varint of a huge (or negative) length or count where a field starts: the encoding
    of the first k fields of a valid record, then the varint, then anything."""
    version, _ = item
    fields = version.parsed["fields"]
    k = data.draw(st.integers(0, len(fields) - 1))
    head_schema = {**version.parsed, "fields": fields[:k], "name": "Head"}
    head = fastavro.parse_schema(head_schema, named_schemas={})
    record = data.draw(values(head))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, head, record, strict=True)
    check(frame(local_schema_id(version), buffer.getvalue() + zigzag(huge) + tail))


def test_the_property_can_fail() -> None:
    """check() really checks: a decoder error that is not a DecodeError gets through."""
    version = VERSIONS[0]
    try:
        encode(version, {})
    except (ValueError, TypeError, KeyError, AttributeError):
        pass  # fastavro refuses it: the strict writer is what the strategies feed
    else:
        raise AssertionError("the strict writer accepted an empty record")
