"""The Avro contracts under `schemas/`: `<name>.v<N>.avsc`, every version kept for compatibility."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import fastavro

from pipeline.codec.errors import SchemaError, UnknownSchemaError

_FILE_RE = re.compile(r"^(?P<name>[a-z0-9_]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    name: str  # contract name, e.g. "inference_result"
    version: int
    path: Path
    definition: dict[str, Any]

    @cached_property
    def parsed(self) -> Any:
        # a fresh named-type namespace per version: old and new versions share type names
        return fastavro.parse_schema(self.definition, named_schemas={})

    @cached_property
    def canonical(self) -> str:
        """Parsing Canonical Form (fastavro's), the identity of the schema's wire meaning."""
        return fastavro.schema.to_parsing_canonical_form(self.definition)

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()

    @property
    def json(self) -> str:
        return json.dumps(self.definition, separators=(",", ":"))


class SchemaCatalog:
    """All schema versions found in the directories given (schemas/, then plug-ins' own)."""

    def __init__(self, directory: Path, *more: Path) -> None:
        self.directory = directory
        self.directories = (directory, *more)
        self._versions: dict[str, dict[int, SchemaVersion]] = {}
        for path in sorted(p for d in self.directories for p in Path(d).glob("*.avsc")):
            match = _FILE_RE.match(path.name)
            if not match:
                raise SchemaError(f"{path}: schema files are named <name>.v<N>.avsc")
            name, version = match["name"], int(match["version"])
            try:
                definition = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SchemaError(f"{path}: cannot read schema: {exc}") from None
            known = self._versions.setdefault(name, {})
            if version in known and known[version].path != path:
                raise SchemaError(f"{path}: {name} v{version} is also {known[version].path}")
            known[version] = SchemaVersion(name, version, path, definition)
        if not self._versions:
            raise SchemaError(f"no *.avsc schemas in {directory}")

    @property
    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[SchemaVersion]:
        try:
            by_version = self._versions[name]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown schema {name!r}; known: {', '.join(self.names)}"
            ) from None
        return [by_version[v] for v in sorted(by_version)]

    def latest(self, name: str) -> SchemaVersion:
        return self.versions(name)[-1]

    def all_versions(self) -> list[SchemaVersion]:
        return [v for name in self.names for v in self.versions(name)]
