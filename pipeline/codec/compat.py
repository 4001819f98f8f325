"""Avro schema-resolution rules: can a reader schema read data written with a writer schema?

BACKWARD compatibility of a new version = the new version reads data of the previous one;
BACKWARD_TRANSITIVE = it reads data of every earlier version. The rules follow the Avro
specification's "Schema Resolution" section (promotions, defaults, enum symbols, unions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.codec.schemas import SchemaVersion

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class _Names:
    """Named types (records, enums, fixed) of one schema, by full name."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema, "")

    def _collect(self, schema: Any, namespace: str) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "error", "enum", "fixed"):
                namespace = schema.get("namespace", namespace)
                self.types[_full_name(schema["name"], namespace)] = schema
                self.types.setdefault(schema["name"], schema)
                for field in schema.get("fields", ()):
                    self._collect(field["type"], namespace)
            elif kind == "array":
                self._collect(schema["items"], namespace)
            elif kind == "map":
                self._collect(schema["values"], namespace)

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return self.types.get(schema, schema)
        if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES:
            return schema["type"]  # {"type": "long", "logicalType": ...} reads like "long"
        return schema


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def incompatibilities(reader: Any, writer: Any) -> list[str]:
    """Reasons why `reader` cannot read data written with `writer`; empty when it can."""
    return _check(reader, writer, _Names(reader), _Names(writer), "", set())


def _check(reader: Any, writer: Any, rn: _Names, wn: _Names, path: str, seen: set) -> list[str]:
    reader, writer = rn.resolve(reader), wn.resolve(writer)
    where = path or "/"
    rk, wk = _kind(reader), _kind(writer)
    if wk == "union":
        problems = []
        for branch in writer:
            problems += _check(reader, branch, rn, wn, path, seen)
        return problems
    if rk == "union":
        for branch in reader:
            if not _check(branch, writer, rn, wn, path, seen):
                return []
        return [f"{where}: no branch of the reader's union reads writer type {wk}"]
    if wk in _PRIMITIVES:
        return [] if rk in _PROMOTIONS.get(wk, {wk}) else [f"{where}: {wk} cannot be read as {rk}"]
    if rk != wk:
        return [f"{where}: {wk} cannot be read as {rk}"]
    if rk == "array":
        return _check(reader["items"], writer["items"], rn, wn, f"{path}[]", seen)
    if rk == "map":
        return _check(reader["values"], writer["values"], rn, wn, f"{path}{{}}", seen)
    if not _names_match(reader, writer):
        return [f"{where}: named type {writer['name']} cannot be read as {reader['name']}"]
    if rk == "fixed":
        return [] if reader["size"] == writer["size"] else [f"{where}: fixed size differs"]
    if rk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{where}: reader enum lacks symbols {sorted(missing)} and has no default"]
        return []
    key = (id(reader), id(writer))
    if key in seen:  # recursive types: this pair is being checked further up
        return []
    seen = seen | {key}
    writer_fields = {}
    for field in writer["fields"]:
        writer_fields[field["name"]] = field
    problems = []
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", ())]
        match = next((writer_fields[n] for n in names if n in writer_fields), None)
        if match is None:
            if "default" not in field:
                problems.append(f"{path}/{field['name']}: new field without a default")
            continue
        problems += _check(field["type"], match["type"], rn, wn, f"{path}/{field['name']}", seen)
    return problems


def _names_match(reader: dict, writer: dict) -> bool:
    short = lambda name: name.rsplit(".", 1)[-1]  # noqa: E731 - unqualified names may match
    aliases = {short(a) for a in reader.get("aliases", ())}
    return short(writer["name"]) in {short(reader["name"]), *aliases}


def backward_transitive_problems(history: Sequence[SchemaVersion]) -> list[str]:
    """For versions oldest-first: problems of each version reading every earlier one."""
    problems = []
    for index, reader in enumerate(history):
        for writer in history[:index]:
            for problem in incompatibilities(reader.definition, writer.definition):
                problems.append(f"{reader.path.name} reading {writer.path.name}: {problem}")
    return problems
