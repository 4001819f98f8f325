"""Where schema ids come from: a Schema Registry when configured, else the local `schemas/` files.

Local ids are derived from each version's canonical form (first 31 bits of its sha256), so they
are stable across machines and restarts, and a reader can find any historical writer schema.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import fastavro

from pipeline.codec.errors import DecodeError
from pipeline.codec.schemas import SchemaCatalog, SchemaVersion
from pipeline.config import Settings, redact_url
from pipeline.errors import InferstreamError, SettingsError

log = logging.getLogger("inferstream.codec.registry")


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


class RegistryUnavailable(InferstreamError):
    """The Schema Registry does not answer (or not as a registry): one line, no retries."""


class SchemaRejected(InferstreamError):
    """The Schema Registry refused a registration (incompatible, invalid); its reason verbatim."""


NOT_FOUND_CODES = frozenset({40401, 40402, 40403})  # subject, version, schema not found
MAX_UNKNOWN_IDS = 10_000  # ids the registry did not know, remembered (no lookup per record)
# ... for this long: a registry's follower may not know an id its leader issued a moment ago
UNKNOWN_ID_RETRY_S = 30.0


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) in NOT_FOUND_CODES


def _registry_error(exc: Exception) -> bool:
    """The registry answered, with an error (vs. no answer at all)."""
    return isinstance(exc, confluent_schema_registry().error.SchemaRegistryError)


def confluent_schema_registry() -> Any:
    """`confluent_kafka.schema_registry`, imported lazily (local-id mode never needs it) and
    without the deprecation warning that its dependency authlib prints on import when httpx2
    is absent: a command's stderr carries our one line, not a third party's."""
    with warnings.catch_warnings():
        # authlib's import puts an "always" filter for its warnings first: ours must come after
        with contextlib.suppress(ImportError):
            import authlib.deprecate  # noqa: F401
        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        import confluent_kafka.schema_registry as module
        import confluent_kafka.schema_registry.error  # noqa: F401  (module.error)
    return module


class ConfluentRegistry:
    """Ids from a Confluent-compatible Schema Registry (Confluent's, Apicurio's ccompat API).

    The first use of a subject registers the schema's history from `schemas/` in order
    (v1..vN), so that ids of older versions resolve and the registry checks each step against
    its compatibility rule. Readers resolve an id at the registry first and fall back to the
    local ids of `schemas/` (records written before the switch to registry mode)."""

    def __init__(
        self,
        url: str,
        catalog: SchemaCatalog,
        *,
        timeout_s: float = 5.0,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        client_type = confluent_schema_registry().SchemaRegistryClient

        if not url.startswith(("http://", "https://")):
            raise SettingsError(
                f"INFERSTREAM_SCHEMA_REGISTRY_URL={redact_url(url)!r}: expected an http:// or "
                "https:// URL (Apicurio: http://host:port/apis/ccompat/v7)"
            )
        self.url = url
        self.shown_url = redact_url(url)
        self.catalog = catalog
        self.local = LocalRegistry(catalog)
        # bounded: a registry that is down costs one timeout, not a storm of retries
        self._client = client_type({"url": url, "timeout": timeout_s, "max.retries": 0})
        # where a subject at compatibility NONE is reported (the CLI prints it instead)
        self.warn: Callable[[str], None] = warn or (
            lambda message: log.warning(message, extra={"registry": self.shown_url})
        )
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Any] = {}
        self._unknown: dict[int, float] = {}  # id -> when the registry last did not know it
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema: SchemaVersion) -> int:
        cache_key = (subject, schema.fingerprint)
        with self._lock:
            if cache_key not in self._ids:
                self._register_history(subject, schema)
            return self._ids[cache_key]

    def register_history(self, subject: str, schema_name: str) -> list[tuple[SchemaVersion, int]]:
        """Register every version of `schema_name` under `subject`, oldest first; returns
        (version, id) pairs. SchemaRejected (the registry's reason) at the first refusal."""
        latest = self.catalog.latest(schema_name)
        with self._lock:
            self._register_history(subject, latest)
            return [
                (version, self._ids[(subject, version.fingerprint)])
                for version in self.catalog.versions(schema_name)
            ]

    def _register_history(self, subject: str, schema: SchemaVersion) -> None:
        schema_type = confluent_schema_registry().Schema

        history = [v for v in self.catalog.versions(schema.name) if v.version <= schema.version]
        for version in history:
            key = (subject, version.fingerprint)
            if key in self._ids:
                continue
            try:
                schema_as_sent = schema_type(version.json, "AVRO")
                self._ids[key] = self._client.register_schema(subject, schema_as_sent)
            except Exception as exc:  # the client raises its own error types per failure
                if _registry_error(exc):
                    raise SchemaRejected(
                        f"Schema Registry at {self.shown_url} rejected {version.path.name} "
                        f"under subject {subject}: {getattr(exc, 'error_message', exc)}"
                    ) from None
                raise self._unavailable(exc) from None
        self._warn_if_unchecked(subject)

    def _warn_if_unchecked(self, subject: str) -> None:
        try:
            level = self._client.get_compatibility(subject)
        except Exception:  # a registry without per-subject config: nothing to warn about
            return
        if str(getattr(level, "value", level)).upper() == "NONE":
            self.warn(
                f"Schema Registry subject {subject} has compatibility NONE: the registry will "
                "accept any change to it, including ones that break readers of older records"
            )

    def writer_schema(self, schema_id: int) -> Any:
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
            missed_at = self._unknown.get(schema_id)
            if missed_at is None or time.monotonic() - missed_at >= UNKNOWN_ID_RETRY_S:
                try:
                    found = self._client.get_schema(schema_id)
                except Exception as exc:  # the client raises its own error types per failure
                    if not _registry_error(exc):
                        raise self._unavailable(exc) from None
                    if not _not_found(exc):
                        raise DecodeError(
                            "unknown-schema",
                            f"schema id {schema_id}: Schema Registry at {self.shown_url}: "
                            f"{getattr(exc, 'error_message', exc)}",
                        ) from None
                    if len(self._unknown) < MAX_UNKNOWN_IDS or schema_id in self._unknown:
                        self._unknown[schema_id] = time.monotonic()
                else:
                    parsed = fastavro.parse_schema(json.loads(found.schema_str), named_schemas={})
                    self._schemas[schema_id] = parsed
                    return parsed
            # not in the registry: a record written in local-id mode (ids from schemas/)?
            version = self.local.version_for(schema_id)
            if version is None:
                raise DecodeError(
                    "unknown-schema",
                    f"schema id {schema_id} is neither in the Schema Registry at "
                    f"{self.shown_url} nor a local id of schemas/",
                )
            self._schemas[schema_id] = version.parsed
            return version.parsed

    def check(self) -> None:
        """RegistryUnavailable unless the registry answers (one bounded call)."""
        try:
            self._client.get_subjects()
        except Exception as exc:
            if _registry_error(exc):
                raise RegistryUnavailable(
                    f"{self.shown_url} does not answer as a Schema Registry: "
                    f"{getattr(exc, 'error_message', exc)} (Apicurio's Confluent API is at "
                    "/apis/ccompat/v7)"
                ) from None
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"Schema Registry at {self.shown_url} does not answer ({type(exc).__name__}: "
            f"{redact_url(str(exc))}); start one (`inferstream stack up --registry`) or unset "
            "INFERSTREAM_SCHEMA_REGISTRY_URL to use the local ids of schemas/"
        )


@dataclass(frozen=True)
class Registered:
    subject: str
    ids: tuple[tuple[int, int], ...]  # (schema version, registry id), oldest first


def register_subjects(
    registry: ConfluentRegistry, subjects: Iterable[tuple[str, str]]
) -> list[Registered]:
    """Register the `schemas/` history of each (subject, schema name), in order; the first
    refusal stops with SchemaRejected, before any later subject is touched."""
    out = []
    for subject, schema_name in subjects:
        pairs = registry.register_history(subject, schema_name)
        out.append(Registered(subject, tuple((v.version, schema_id) for v, schema_id in pairs)))
    return out


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
            ConfluentRegistry(
                settings.schema_registry_url, catalog, timeout_s=settings.schema_registry_timeout_s
            )
            if settings.schema_registry_url
            else LocalRegistry(catalog)
        )
    return _registries[key]
