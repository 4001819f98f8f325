"""Requests from JSON-lines files, each line checked against the stream's Avro schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastavro.validation import ValidationError, validate

from pipeline.codec import SchemaVersion


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
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    known = {field["name"] for field in schema.definition["fields"]}
    unknown = sorted(set(record) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
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


def field_problems(record: dict[str, Any], schema: SchemaVersion) -> list[str]:
    """Per-field reasons (fastavro's own error names the whole record, not the field)."""
    problems = []
    for field in schema.parsed["fields"]:
        name = field["name"]
        if name not in record:
            if "default" not in field:
                problems.append(f"missing field {name}")
            continue
        try:
            validate(record[name], field["type"], raise_errors=True, strict=True)
        except ValidationError:
            problems.append(f"{name}={record[name]!r} is not {_type_name(field['type'])}")
    return problems


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "enum":
            return "one of " + "/".join(avro_type["symbols"])
        return str(avro_type.get("logicalType") or avro_type.get("type"))
    if isinstance(avro_type, list):
        return " or ".join(_type_name(t) for t in avro_type)
    return f"a {avro_type}"


def load_jsonl(path: Path, schema: SchemaVersion) -> tuple[list[dict[str, Any]], list[LineError]]:
    """All valid records and the errors of the invalid lines (blank lines are skipped)."""
    times = _timestamp_fields(schema)
    records: list[dict[str, Any]] = []
    errors: list[LineError] = []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                records.append(parse_line(text, schema, times))
            except ValueError as exc:
                errors.append(LineError(number, str(exc)))
    return records, errors
