"""Fuzzing the request-file reader (`inferstream produce --file`): arbitrary lines in any
encoding, JSON objects with the schema's fields and arbitrary values, mutated valid lines,
deep nesting. Every non-blank line is either a record or one error line with a reason; every
record it accepts is one the producer can encode (fastavro strict) and the worker's
preprocessing accepts; nothing else escapes, nothing hangs."""

from __future__ import annotations

import io
import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from pipeline.cli.request_files import load_jsonl
from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator

SCHEMA = registry_from_settings(Settings()).catalog.latest("fraud_request")  # type: ignore[attr-defined]
FIELDS = [f["name"] for f in SCHEMA.definition["fields"]]
VALID = [
    {**r, "event_time": r["event_time"]} for r in TransactionGenerator(seed=3).generate(50).records
]
FILE = Path(tempfile.mkdtemp(prefix="fuzz-request-files-")) / "requests.jsonl"


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    if isinstance(out.get("event_time"), datetime):
        out["event_time"] = out["event_time"].isoformat()
    return out


def counted_lines(data: bytes) -> int:
    """Lines load_jsonl must account for: all but blank ones (a bad encoding is not blank)."""
    n = 0
    for number, raw in enumerate(io.BytesIO(data), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            n += 1
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        n += bool(text.strip())
    return n


def check(data: bytes, with_features: bool = True) -> None:
    FILE.write_bytes(data)
    records, errors = load_jsonl(FILE, SCHEMA, build_features if with_features else None)
    assert len(records) + len(errors) == counted_lines(data)
    assert len({e.line for e in errors}) == len(errors)
    for error in errors:
        assert error.reason and "\n" not in error.reason, error
    for record in records:  # what it accepts, the producer can send and the worker scores
        filled = {**record, "request_id": record["request_id"] or "fuzz"}
        fastavro.schemaless_writer(io.BytesIO(), SCHEMA.parsed, filled, strict=True)
    if with_features and records:
        filled = [{**r, "request_id": r["request_id"] or "fuzz"} for r in records]
        assert not build_features(filled).errors


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()  # NaN and infinities too: json.dumps writes them, json.loads reads them
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
TIMES = st.one_of(
    st.integers(-(2**63), 2**63),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.datetimes(
        timezones=st.sampled_from([timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])
    ).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # no offset: refused
    st.text(max_size=30),
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record with some fields replaced, removed or added."""
    record = _jsonable(draw(st.sampled_from(VALID)))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            record.pop(name, None)
        else:
            record[name] = draw(TIMES if name == "event_time" else JSON)
    if draw(st.booleans()):
        record[draw(st.text(max_size=8))] = draw(JSON)
    return record


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


@given(st.lists(st.binary(max_size=120), max_size=8))
def test_arbitrary_byte_lines(lines: list[bytes]) -> None:
    check(b"\n".join(lines))


@given(
    st.lists(st.text(max_size=80), max_size=6),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252", "utf-32"]),
)
def test_arbitrary_text_in_any_encoding(lines: list[str], encoding: str) -> None:
    check("\n".join(lines).encode(encoding, "replace"))


@given(st.lists(records(), min_size=1, max_size=6))
def test_schema_shaped_records_with_arbitrary_values(items: list[dict[str, Any]]) -> None:
    check(b"\n".join(_dumps(r) for r in items))


@given(
    st.sampled_from(VALID),
    st.lists(
        st.tuples(
            st.integers(0),
            st.sampled_from(['"', "{", "}", ",", ":", "\\", "0", "é", "\x00", "\ud800"]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_valid_lines(record: dict[str, Any], edits: list[tuple[int, str]]) -> None:
    text = json.dumps(_jsonable(record))
    for where, char in edits:
        at = where % (len(text) + 1)
        text = text[:at] + char + text[at + 1 :]
    check(text.encode("utf-8", "surrogatepass"))


@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":', '[{"x":']))
def test_deep_nesting(depth: int, opener: str) -> None:
    check((opener * depth).encode(), with_features=False)


def test_the_property_can_fail() -> None:
    """counted_lines disagrees with a reader that drops a line, so check() would catch it."""
    line = json.dumps(_jsonable(VALID[0])).encode()
    assert counted_lines(line + b"\n\n" + line) == 2
    FILE.write_bytes(line)
    records, errors = load_jsonl(FILE, SCHEMA, build_features)
    assert len(records) == 1 and not errors
