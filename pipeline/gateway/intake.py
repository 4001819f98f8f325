"""One stream's intake: JSON requests checked with the plug-in's schema and preprocessing,
their cost estimated, and the fast path's cache keys and cached results.

The checks are the worker's own: the request schema (field by field, strict, as the producer
encodes) and the stream's versioned preprocessing, so a request the worker would dead-letter
is refused at submit with the same reason, per field. The fast path looks the request's
`data_hash` up in the worker's result cache under the scope the worker caches it under
(pipeline/tiers/cached.py: `<version>:<data_hash>` for one serving version, the cascade's
scope with the escalated tag under a cascade, nothing under a canary, whose state decides the
version) and turns a cached output row into result fields with the head of the version that
answered it, exactly as the worker serves a cache hit.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from fastavro.validation import ValidationError, validate

from pipeline.codec import SchemaRegistry
from pipeline.config import Settings
from pipeline.core.plugin import StreamPlugin
from pipeline.models.manifest import ModelManifest, resolve_model_dir
from pipeline.redis.cache import ResultCache
from pipeline.redis.client import DegradingRedis
from pipeline.scoring.provenance import data_hashes
from pipeline.tiers.cached import CASCADE_SCOPE, stable_scope
from pipeline.tiers.costs import units_per_row
from pipeline.tiers.policy import PolicyWatcher

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces or newlines


@dataclass
class Problem:
    index: int  # position in the submission
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass
class Checked:
    """A submission after the checks: every record valid, or the problems."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # data_hash per record
    costs: list[float] = field(default_factory=list)  # estimated cost units per record
    fields: dict[str, list[Any]] = field(default_factory=dict)  # preprocessing's result fields
    # set at admission when the tenant's budget only fits the routing policy's cheaper
    # fallback: that version, and `costs` are then its cost per row
    degraded_to: str | None = None


class StreamIntake:
    def __init__(
        self,
        settings: Settings,
        plugin: StreamPlugin,
        registry: SchemaRegistry,
        redis: DegradingRedis,
        model_version: str | None = None,
    ) -> None:
        self.plugin = plugin
        self.topics = plugin.topics(settings.topic_namespace)
        model_dir = resolve_model_dir(settings.models_dir, plugin.model_name, model_version)
        self.manifest = ModelManifest.load(model_dir)
        plugin.check_model(self.manifest)
        self.preprocess = plugin.preprocessor(self.manifest, model_dir)
        self.head = plugin.head(self.manifest)
        schema = registry.catalog.latest(plugin.request_schema)  # type: ignore[attr-defined]
        self.schema = schema
        self._fields = list(schema.parsed["fields"])
        self._names = {f["name"] for f in self._fields}
        self._defaults = {f["name"]: f["default"] for f in self._fields if "default" in f}
        self._times = {
            f["name"]
            for f in schema.definition["fields"]
            if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
        }
        self._checks = {f["name"]: _type_check(f["type"]) for f in self._fields}
        self._column_checks = [(f["name"], _column_check(f["type"])) for f in self._fields]
        # the worker's cache of this stream's model outputs (pipeline/assembly.py names it so)
        self.cache = ResultCache(
            settings.redis_url, f"{self.topics.prefix}:{plugin.model_name}", redis=redis
        )
        metrics = self.manifest.metrics
        self.seconds_per_token = _positive(metrics.get("seconds_per_token"))
        self.seconds_per_row = _positive(metrics.get("seconds_per_row"))
        # the served version's measured cost per row: what the worker's provenance reports,
        # so the reservation and its settlement are in the same units
        self.units_per_row = _positive(units_per_row(self.manifest, model_dir))
        self.row_cost = settings.gateway_row_cost
        # the routing policy's fallback, a cheaper route for a tenant over its cost budget:
        # dense streams only (their workers route by the policy, pipeline/tiers/cascade.py)
        self._models_dir = settings.models_dir
        self._policy = (
            PolicyWatcher(settings.models_dir, plugin.model_name, plugin.preprocessing_version)
            if plugin.message_cost is None and self.manifest.input.kind == "dense"
            else None
        )
        self._version_units: dict[str, float | None] = {}  # cost per row of each version
        self._heads = {self.manifest.version: self.head}  # per version that answers from cache

    @property
    def model_version(self) -> str:
        return self.manifest.version

    def _units_of(self, version: str) -> float | None:
        if version not in self._version_units:
            model_dir = resolve_model_dir(self._models_dir, self.plugin.model_name, version)
            self._version_units[version] = _positive(
                units_per_row(ModelManifest.load(model_dir), model_dir)
            )
        return self._version_units[version]

    def row_units(self) -> float | None:
        """The most a row can cost under the current routing policy, the reservation per row:
        a cascade's small + large (an escalated row pays both), the primary's otherwise, plus
        a canary candidate's (its rows are scored by both); the served version's without a
        policy. Settling brings each reservation down to what was served, so reserving the
        worst case is what keeps a budget from being overspent."""
        policy = self._policy.current() if self._policy is not None else None
        if policy is None or not self.units_per_row:
            return self.units_per_row
        serving = [policy.cascade.small, policy.cascade.large] if policy.cascade else [
            policy.primary
        ]  # fmt: skip
        if policy.canary is not None:
            serving.append(policy.canary.version)
        units = [self._units_of(v) for v in serving]
        return sum(units) if all(u is not None for u in units) else self.units_per_row  # type: ignore[misc]

    def cheaper_fallback(self) -> tuple[str, float] | None:
        """(version, cost units per row) of the routing policy's fallback when it costs less
        per row than the estimate; None when there is no cheaper route."""
        policy = self._policy.current() if self._policy is not None else None
        version = policy.fallback_version if policy is not None else None
        estimate = self.row_units()
        if version is None or not estimate:
            return None
        units = self._units_of(version)
        return (version, units) if units is not None and units < estimate else None

    def check(self, items: Sequence[Any], tenant: str) -> Checked:
        """Schema and preprocessing checks of a submission, for the caller's `tenant`."""
        return self.check_many([(items, tenant)])[0]

    def check_many(self, submissions: Sequence[tuple[Sequence[Any], str]]) -> list[Checked]:
        """`check` of several submissions with one preprocessing call (the gateway coalesces
        the submissions that arrive together: per-call numpy overhead dominates one row). A
        submission with any problem keeps no records: it is refused whole."""
        outs = [Checked() for _ in submissions]
        records: list[dict[str, Any]] = []
        owners: list[int] = []  # submission of each record
        positions: list[int] = []  # its index within the submission
        together = None
        if len(submissions) > 1:  # coalesced ones: one column pass over all their items
            together = self._valid_records(
                [item for items, _ in submissions for item in items],
                [tenant for items, tenant in submissions for _ in items],
                [s for s, (items, _) in enumerate(submissions) for _ in items],
            )
        if together is not None:
            records = together
            owners = [s for s, (items, _) in enumerate(submissions) for _ in items]
            positions = [i for items, _ in submissions for i in range(len(items))]
            submissions = []  # checked
        for s, (items, tenant) in enumerate(submissions):
            valid_records = self._valid_records(items, [tenant] * len(items))
            if valid_records is not None:  # the common case, checked a column at a time
                records += valid_records
                owners += [s] * len(valid_records)
                positions += range(len(valid_records))
                continue
            seen: set[str] = set()
            for index, item in enumerate(items):
                record, problems = self._record(index, item, tenant)
                request_id = record.get("request_id")
                if isinstance(request_id, str):
                    if request_id in seen:
                        problems.append(
                            Problem(index, "request_id", "used twice in this submission")
                        )
                    seen.add(request_id)
                if problems:
                    outs[s].problems += problems
                else:
                    records.append(record)
                    owners.append(s)
                    positions.append(index)
        if records:
            features = self.preprocess(records)
            for r, reason in features.errors:
                outs[owners[r]].problems += _split_reasons(positions[r], reason, self._names)
            valid = features.valid_index.tolist()
            canonical = getattr(features, "canonical", None)
            hashes = data_hashes(
                canonical
                if canonical is not None
                else self.plugin.canonical_inputs(features.matrix)
            )
            costs = self._costs(features, len(valid))
            fields = getattr(features, "fields", None) or {}
            if len(outs) == 1 and not outs[0].problems and len(valid) == len(records):
                # one submission, every row valid: its columns as they are
                out = outs[0]
                out.records, out.hashes, out.costs = records, list(hashes), costs
                out.fields = {name: list(values) for name, values in fields.items()}
                valid = []
            for j, r in enumerate(valid):
                out = outs[owners[r]]
                if out.problems:
                    continue
                out.records.append(records[r])
                out.hashes.append(hashes[j])
                out.costs.append(costs[j])
                for name, values in fields.items():
                    out.fields.setdefault(name, []).append(values[j])
        for out in outs:
            if out.problems:
                out.problems.sort(key=lambda p: p.index)
                out.records, out.hashes, out.costs, out.fields = [], [], [], {}
        return outs

    def _valid_records(
        self,
        items: Sequence[Any],
        tenants: Sequence[str],
        owners: Sequence[int] | None = None,
    ) -> list[dict[str, Any]] | None:
        """The records of `items` (each for its caller's tenant; `owners`: the submission of
        each, None for one submission) when every item passes the schema checks, checked a
        field at a time over all items (a C-level pass per column instead of Python per
        value: ~10 us a row less); None at the first doubt - `_record` then checks row by row
        and words every problem, so what is accepted and what is said stay `_record`'s."""
        names = self._names
        if not all(type(item) is dict for item in items):
            return None
        if not all(names.issuperset(item) for item in items):  # an unknown field
            return None
        defaults = self._defaults
        records = [{**defaults, **item} for item in items]
        ids = [record.get("request_id") for record in records]
        missing = [i for i, request_id in enumerate(ids) if request_id in (None, "")]
        if len(missing) < len(ids):
            given = [
                (0 if owners is None else owners[i], request_id)
                for i, request_id in enumerate(ids)
                if request_id not in (None, "")
            ]
            if not all(type(v) is str and _REQUEST_ID.match(v) for _, v in given):
                return None
            if len(set(given)) < len(given):  # used twice in one submission
                return None
        for i, request_id in zip(missing, _new_ids(len(missing)), strict=True):
            records[i]["request_id"] = request_id
        tenant_field = self.plugin.tenant_field
        if tenant_field:
            pairs = zip(records, tenants, strict=True)
            if not all(record.get(tenant_field) in (None, "", t) for record, t in pairs):
                return None
            for record, tenant in zip(records, tenants, strict=True):
                record[tenant_field] = tenant
        for name in self._times:
            for record in records:
                value = record.get(name)
                if isinstance(value, str):
                    millis = _iso_millis(value)
                    if millis is None:
                        return None
                    record[name] = millis
        for name, column_check in self._column_checks:
            try:
                column = [record[name] for record in records]
            except KeyError:  # missing
                return None
            if not column_check(column):
                return None
        return records

    def _record(self, index: int, item: Any, tenant: str) -> tuple[dict[str, Any], list[Problem]]:
        if not isinstance(item, dict):
            return {}, [Problem(index, None, f"expected a JSON object, got {_json_type(item)}")]
        problems = [
            Problem(index, name, "unknown field") for name in sorted(set(item) - self._names)
        ]
        record = {**self._defaults, **item}
        request_id = record.get("request_id")
        if request_id in (None, ""):
            record["request_id"] = _new_id()
        elif not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
            problems.append(
                Problem(index, "request_id", "must be 1-200 printable ASCII characters")
            )
        tenant_field = self.plugin.tenant_field
        if tenant_field:
            given = record.get(tenant_field)
            if given not in (None, "", tenant):
                problems.append(
                    Problem(index, tenant_field, "must be your API key's tenant or left out")
                )
            record[tenant_field] = tenant
        for name in self._times & set(record):
            value = record[name]
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    problems.append(Problem(index, name, f"{value!r} is not an ISO-8601 time"))
                    continue
                if parsed.tzinfo is None:
                    problems.append(Problem(index, name, f"{value!r} has no UTC offset"))
                    continue
                record[name] = int(parsed.timestamp() * 1000)
        flagged = {p.field for p in problems}
        for f in self._fields:
            name = f["name"]
            if name in flagged:
                continue
            if name not in record:
                problems.append(Problem(index, name, "missing"))
                continue
            value = record[name]
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(Problem(index, name, f"{value} is not a finite number"))
                continue
            if not self._checks[name](value):
                problems.append(Problem(index, name, f"{value!r} is not {_type_name(f['type'])}"))
        return record, problems

    def _costs(self, features: Any, n: int) -> list[float]:
        """Estimated cost units per request: tokens x seconds_per_token for token models, the
        most a row can cost under the routing policy in measured units per row (`row_units`:
        manifests' `cost`, as the worker's provenance reports it), the manifest's
        seconds_per_row (as model-ms), else INFERSTREAM_GATEWAY_ROW_COST."""
        lengths = getattr(features, "lengths", None)
        if lengths is not None and self.seconds_per_token:
            owner = getattr(features, "row_request", None)
            owner = np.arange(len(lengths)) if owner is None else np.asarray(owner)
            tokens = np.bincount(owner, weights=np.asarray(lengths), minlength=n)
            return [round(float(t) * self.seconds_per_token * 1000, 6) for t in tokens]
        row_units = self.row_units()
        if row_units:
            return [row_units] * n
        if self.seconds_per_row:
            return [self.seconds_per_row * 1000] * n
        return [self.row_cost] * n

    def _cache_scope(self) -> tuple[str | None, Any]:
        """(the scope the worker caches this stream's answers under, the policy): the one
        serving version's, or the cascade's (pipeline/tiers/cached.py); None under a canary,
        whose state (in the worker's Redis record) decides which version answers a key."""
        policy = self._policy.current() if self._policy is not None else None
        if policy is None:
            return self.manifest.version, None
        if policy.canary is not None:
            return None, policy
        return stable_scope(None, policy), policy

    def cache_lookup(self, hashes: Sequence[str]) -> CacheLookup:
        """Where the worker's cached answers to `hashes` are under the current policy, and
        how to read what is found there (the admission script reads them in its own call)."""
        scope, policy = self._cache_scope()
        if scope is None:
            return CacheLookup([], False, lambda values: [None] * len(values))
        names = self.cache.key_names([f"{scope}:{h}" for h in hashes])
        if scope.startswith(CASCADE_SCOPE):  # tagged: 1.0 the large model's row, 0.0 the small's
            small, large = policy.cascade.small, policy.cascade.large

            def tagged(values: Sequence[bytes | None]) -> list[CachedRow | None]:
                rows = [None if v is None else np.frombuffer(v, dtype="<f8") for v in values]
                return [
                    None if row is None or not len(row) or row[-1] not in (0.0, 1.0)
                    else CachedRow(large if row[-1] == 1.0 else small, row[:-1])
                    for row in rows
                ]  # fmt: skip

            return CacheLookup(names, True, tagged)
        return CacheLookup(
            names,
            False,
            lambda values: [
                None if v is None else CachedRow(scope, np.frombuffer(v, dtype="<f8"))
                for v in values
            ],
        )

    def cached_rows(self, hashes: Sequence[str]) -> list[CachedRow | None] | None:
        """The worker's cached answers under the current policy, None per row where there is
        none; None when the cache is unavailable (synchronous: run off the event loop)."""
        lookup = self.cache_lookup(hashes)
        if not lookup.names:
            return [None] * len(hashes)
        found = self.cache.redis.call(lambda client: client.mget(lookup.names))
        return None if found is None else lookup.rows(found)

    def _head_of(self, version: str) -> Callable[[np.ndarray], Mapping[str, Any]]:
        head = self._heads.get(version)
        if head is None:
            model_dir = resolve_model_dir(self._models_dir, self.plugin.model_name, version)
            head = self._heads[version] = self.plugin.head(ModelManifest.load(model_dir))
        return head

    def cached_results(
        self, checked: Checked, rows: Sequence[CachedRow], which: Sequence[int]
    ) -> list[dict[str, Any]]:
        """Result fields (as the result schema names them) of the records `which` from their
        cached output rows, through the head of the version that answered each."""
        served_at = time.time_ns() // 1_000_000
        tenant_field = self.plugin.tenant_field
        by_version: dict[str, list[int]] = {}
        for j, i in enumerate(which):
            by_version.setdefault(rows[i].version, []).append(j)
        heads: list[tuple[str, Mapping[str, Any], int]] = [("", {}, 0)] * len(which)
        for version, positions in by_version.items():
            outputs = np.stack([rows[which[j]].output for j in positions]).astype(np.float64)
            columns = self._head_of(version)(outputs)
            for k, j in enumerate(positions):
                heads[j] = (version, columns, k)
        results = []
        for j, i in enumerate(which):
            record = checked.records[i]
            version, columns, k = heads[j]
            result = {
                "request_id": record["request_id"],
                "key": record.get(self.plugin.key_field),
                "tenant": record.get(tenant_field) if tenant_field else None,
                "model_name": self.manifest.name,
                "model_version": version,
                "served_at": served_at,
                "latency_ms": 0.0,
                "degraded": False,
            }
            for name, values in checked.fields.items():
                result[name] = jsonable(values[i])
            for name, values in columns.items():
                result[name] = jsonable(values[k])
            results.append(result)
        return results


@dataclass(frozen=True)
class CacheLookup:
    """The Redis names of a submission's cached answers (none: no fast path, as under a
    canary), whether a tier tag ends each (a cascade's scope), and `rows`: the values found
    there as CachedRows, None where there is none."""

    names: list[str]
    tagged: bool
    rows: Callable[[Sequence[bytes | None]], list[CachedRow | None]]


@dataclass(frozen=True)
class CachedRow:
    """A worker's cached answer: the version that computed it and its output row."""

    version: str
    output: np.ndarray




def _new_id() -> str:
    return _new_ids(1)[0]


class _RandomBytes:
    """os.urandom's bytes, drawn 4 KiB at a time: one syscall (which hands back the GIL, and
    is slow on busy virtual machines) per 256 request ids, not per request. Not a seeded
    PRNG: its outputs can be predicted from enough of them, and a tenant that predicted the
    ids given to others' requests could take them first (its status record refuses theirs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the loop and the check's thread both draw
        self._buffer = memoryview(b"")
        self._at = 0

    def take(self, size: int) -> memoryview:
        with self._lock:
            if self._at + size > len(self._buffer):
                self._buffer, self._at = memoryview(os.urandom(max(4096, size))), 0
            self._at += size
            return self._buffer[self._at - size : self._at]


_random_bytes = _RandomBytes()


_VARIANT = "89ab89ab89ab89ab"  # RFC 4122's variant: a hex digit's top two bits set to 10


def _uuid4_hex(h: str) -> str:
    """str(uuid.UUID(hex=h, version=4)) of 32 hex digits, by string slices."""
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:32]}"


def _new_ids(count: int) -> list[str]:
    digits = _random_bytes.take(16 * count).hex()
    return [_uuid4_hex(digits[i : i + 32]) for i in range(0, 32 * count, 32)]


def _iso_millis(value: str) -> int | None:
    """An ISO-8601 time with a UTC offset as epoch milliseconds; None for anything else."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return None if parsed.tzinfo is None else int(parsed.timestamp() * 1000)


_INT32, _INT64 = 2**31, 2**63


def _type_check(avro_type: Any) -> Callable[[Any], bool]:
    """A fast strict check for the field types requests use; others go to fastavro."""
    kind = avro_type.get("type") if isinstance(avro_type, dict) else avro_type
    if isinstance(avro_type, list):
        branches = [_type_check(t) for t in avro_type]
        return lambda v: any(check(v) for check in branches)
    if kind == "string":
        return lambda v: isinstance(v, str)
    if kind in ("double", "float"):
        return lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    if kind == "int":
        return lambda v: type(v) is int and -_INT32 <= v < _INT32
    if kind == "long":
        return lambda v: type(v) is int and -_INT64 <= v < _INT64
    if kind == "boolean":
        return lambda v: isinstance(v, bool)
    if kind == "null":
        return lambda v: v is None
    if kind == "enum":
        symbols = frozenset(avro_type["symbols"])
        return lambda v: isinstance(v, str) and v in symbols

    def slow(value: Any) -> bool:
        try:
            return bool(validate(value, avro_type, raise_errors=True, strict=True))
        except ValidationError:
            return False

    return slow


def _column_check(avro_type: Any) -> Callable[[list[Any]], bool]:
    """`_type_check` (and `_record`'s finiteness rule) over a whole column at once: True only
    when every value passes; the common types by the set of value types and min / max."""
    kind = avro_type.get("type") if isinstance(avro_type, dict) else avro_type
    if kind == "string":
        return lambda column: set(map(type, column)) == {str}
    if kind in ("double", "float"):
        return lambda column: (
            set(map(type, column)) <= {int, float} and all(map(math.isfinite, column))
        )
    if kind in ("int", "long"):
        bound = _INT32 if kind == "int" else _INT64
        return lambda column: (
            set(map(type, column)) == {int} and -bound <= min(column) and max(column) < bound
        )
    if kind == "boolean":
        return lambda column: set(map(type, column)) == {bool}
    if kind == "enum":
        symbols = frozenset(avro_type["symbols"])
        return lambda column: set(map(type, column)) == {str} and symbols.issuperset(column)
    check = _type_check(avro_type)  # unions, maps, ...: value by value

    def each(column: list[Any]) -> bool:
        return all(check(v) and not (isinstance(v, float) and not math.isfinite(v)) for v in column)

    return each


def jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and math.isfinite(number) else None


def _split_reasons(index: int, reason: str, names: set[str]) -> list[Problem]:
    """Preprocessing joins its reasons with '; ', each starting with the field it is about."""
    problems = []
    for part in reason.split("; "):
        head = re.split(r"[\s=:]", part, maxsplit=1)[0]
        problems.append(Problem(index, head if head in names else None, part))
    return problems


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "enum":
            return "one of " + "/".join(avro_type["symbols"])
        if avro_type.get("type") == "map":
            return "an object of " + _type_name(avro_type.get("values"))
        if avro_type.get("logicalType") == "timestamp-millis":
            return "a time (epoch milliseconds, or ISO-8601 with an offset)"
        return str(avro_type.get("logicalType") or avro_type.get("type"))
    if isinstance(avro_type, list):
        return " or ".join(_type_name(t) for t in avro_type)
    return {
        "string": "a string",
        "int": "an int",
        "long": "a long",
        "double": "a number",
        "float": "a number",
        "boolean": "a boolean",
        "null": "null",
    }.get(str(avro_type), f"a {avro_type}")
