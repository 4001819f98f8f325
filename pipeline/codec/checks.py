"""Per-field type checks of a record against its Avro schema, with readable reasons.

fastavro's `strict=True` writer only checks that fields are present: it coerces the rest
(`"12.5"` for a double is written as 12.5, `2.7` for a long as 2). Records from outside (a
file, a caller's dict) are checked here before they are encoded.
"""

from __future__ import annotations

from typing import Any

from fastavro.validation import ValidationError, validate

from pipeline.codec.schemas import SchemaVersion


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
    article = "an" if str(avro_type)[:1] in "aeiou" else "a"
    return f"{article} {avro_type}"
