"""Where schema ids come from: a Schema Registry when configured, else the local `schemas/` files.

Local ids are derived from each version's canonical form (first 31 bits of its sha256), so they
are stable across machines and restarts, and a reader can find any historical writer schema.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from pipeline.codec.errors import DecodeError
from pipeline.codec.schemas import SchemaCatalog, SchemaVersion
from pipeline.config import Settings


class SchemaRegistry(Protocol):
    def id_for(self, subject: str, schema: SchemaVersion) -> int:
        """The id to frame records written with `schema` under `subject` (`<topic>-value`)."""
        ...

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed writer schema behind an id; DecodeError('unknown-schema') if none."""
        ...


def local_schema_id(schema: SchemaVersion) -> int:
    return int(schema.fingerprint[:8], 16) & 0x7FFFFFFF


class LocalRegistry:
    """Ids from the files in `schemas/`; no server needed."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self.catalog = catalog
        self._by_id: dict[int, SchemaVersion] = {}
        for version in catalog.all_versions():
            schema_id = local_schema_id(version)
            other = self._by_id.get(schema_id)
            if other is not None and other.canonical != version.canonical:
                raise ValueError(f"schema id collision: {other.path} and {version.path}")
            self._by_id[schema_id] = version

    def id_for(self, subject: str, schema: SchemaVersion) -> int:
        return local_schema_id(schema)

    def writer_schema(self, schema_id: int) -> Any:
        try:
            return self._by_id[schema_id].parsed
        except KeyError:
            raise DecodeError(
                "unknown-schema", f"schema id {schema_id} is not in schemas/"
            ) from None

    def version_for(self, schema_id: int) -> SchemaVersion | None:
        return self._by_id.get(schema_id)


class ConfluentRegistry:
    """Ids from a Confluent-compatible Schema Registry (registered on first use, then cached)."""

    def __init__(self, url: str, catalog: SchemaCatalog) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.catalog = catalog
        self._client = SchemaRegistryClient({"url": url})
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Any] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema: SchemaVersion) -> int:
        from confluent_kafka.schema_registry import Schema

        cache_key = (subject, schema.fingerprint)
        with self._lock:
            if cache_key not in self._ids:
                self._ids[cache_key] = self._client.register_schema(
                    subject, Schema(schema.json, "AVRO")
                )
            return self._ids[cache_key]

    def writer_schema(self, schema_id: int) -> Any:
        import json

        import fastavro

        with self._lock:
            if schema_id not in self._schemas:
                try:
                    found = self._client.get_schema(schema_id)
                except Exception as exc:  # the client raises its own error types per failure
                    raise DecodeError("unknown-schema", f"schema id {schema_id}: {exc}") from exc
                self._schemas[schema_id] = fastavro.parse_schema(
                    json.loads(found.schema_str), named_schemas={}
                )
            return self._schemas[schema_id]


_registries: dict[tuple[str, ...], SchemaRegistry] = {}


def registry_from_settings(settings: Settings) -> SchemaRegistry:
    """One registry per (schemas dir, registry url) in a process.

    Its catalog holds schemas/ and the schema directories of the registered stream plug-ins.
    """
    from pipeline.core.registry import plugin_schema_dirs

    extra = plugin_schema_dirs()
    key = (str(settings.schemas_dir), *map(str, extra), settings.schema_registry_url)
    if key not in _registries:
        catalog = SchemaCatalog(settings.schemas_dir, *extra)
        _registries[key] = (
            ConfluentRegistry(settings.schema_registry_url, catalog)
            if settings.schema_registry_url
            else LocalRegistry(catalog)
        )
    return _registries[key]
