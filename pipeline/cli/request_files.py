"""Requests from JSON-lines files, each line checked against the stream's Avro schema."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.codec import SchemaVersion
from pipeline.codec.checks import field_problems

# a stream's preprocessing: `.errors` lists (position, reason) of the records it would reject
BuildFeatures = Callable[[Sequence[Mapping[str, Any]]], Any]


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based, as editors count
    reason: str


def _timestamp_fields(schema: SchemaVersion) -> set[str]:
    return {
        field["name"]
        for field in schema.definition["fields"]
        if isinstance(field["type"], dict)
        and field["type"].get("logicalType") == "timestamp-millis"
    }


def _to_epoch_ms(value: Any) -> Any:
    """JSON has no time type: accept epoch milliseconds or an ISO-8601 string with offset."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError(f"time {value!r} has no UTC offset")
        return int(parsed.timestamp() * 1000)
    return value


def parse_line(text: str, schema: SchemaVersion, times: set[str]) -> dict[str, Any]:
    """One JSON line as a schema-valid record; ValueError with a readable reason otherwise."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # found by tests/fuzz: '[' * 100000 is not a crash, but a bad line
        raise ValueError("not JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    known = {field["name"] for field in schema.definition["fields"]}
    unknown = sorted(set(record) - known)
    if unknown:
        # a name with a newline or control characters is shown escaped: one line per error
        shown = (name if name.isprintable() else repr(name) for name in unknown)
        raise ValueError(f"unknown field(s) {', '.join(shown)}")
    record.setdefault("request_id", "")  # filled in by the producer when empty
    for name in times & set(record):
        record[name] = _to_epoch_ms(record[name])
    for name, value in record.items():
        if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name} is {value}: not a finite number")
    problems = field_problems(record, schema)
    if problems:
        raise ValueError("; ".join(problems))
    return record


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
        ) from None


def load_jsonl(
    path: Path,
    schema: SchemaVersion,
    build_features: BuildFeatures | None = None,
) -> tuple[list[dict[str, Any]], list[LineError]]:
    """All valid records and the errors of the invalid lines (blank lines are skipped).

    Each line is decoded on its own, so one that is not UTF-8 is a bad line like any other.
    With `build_features` (the stream's preprocessing), records
    that fit the schema but that the worker would dead-letter (a negative amount, a lowercase
    currency) are bad lines too, with the worker's reasons.
    """
    times = _timestamp_fields(schema)
    parsed: list[tuple[int, dict[str, Any]]] = []
    errors: list[LineError] = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                text = _decode(raw)
                if number == 1:
                    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
                if not text.strip():
                    continue
                parsed.append((number, parse_line(text, schema, times)))
            except ValueError as exc:
                errors.append(LineError(number, str(exc)))
    if build_features is not None and parsed:
        # the producer fills in empty request ids, so they are not an error here
        checked = [
            {**record, "request_id": record.get("request_id") or "to-be-assigned"}
            for _, record in parsed
        ]
        rejected = dict(build_features(checked).errors)
        if rejected:
            errors += [LineError(parsed[i][0], reason) for i, reason in rejected.items()]
            errors.sort(key=lambda e: e.line)
            parsed = [item for i, item in enumerate(parsed) if i not in rejected]
    return [record for _, record in parsed], errors
