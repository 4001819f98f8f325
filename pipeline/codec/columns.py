"""Encoding a batch of records column by column, with per-batch fields encoded once.

Most fields of a result or provenance record hold one value for the whole batch (model,
version, batch id, ...). Avro's binary encoding of a record is the concatenation of its
fields' encodings in schema order, so those fields are encoded once per batch and only the
per-record columns per record, vectorised with numpy where the type allows (longs as zigzag
varints, doubles). The bytes are exactly fastavro's (a test compares them on random records),
framed in the Confluent wire format like `AvroSerializer`'s.

Supports flat records of primitive types, `["null", T]` unions and arrays of primitives (an
embedding, top-k labels), which is what the output schemas are; anything else raises
`UnsupportedSchema` at construction, and the caller keeps `AvroSerializer`. Values are checked
like fastavro's strict mode: a missing field or a value of the wrong type raises ValueError
naming the field.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import fastavro
import numpy as np

from pipeline.codec.registry import SchemaRegistry
from pipeline.codec.schemas import SchemaVersion
from pipeline.codec.wire import frame

_SUPPORTED = {"string", "long", "int", "double", "float", "boolean"}
_MAX_VARINT = 10


def _varint(n: int) -> bytes:
    """Avro's zigzag varint of one int (scalar path: string lengths, constants)."""
    u = (n << 1) ^ (n >> 63)
    out = bytearray()
    while u > 0x7F:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


_LENGTHS = [_varint(n) for n in range(8192)]  # string lengths up to 8 KiB: a table look-up


class UnsupportedSchema(ValueError):
    """The schema is not a flat record of primitives and nullable primitives."""


def _zigzag_varints(values: np.ndarray) -> list[bytes]:
    """Avro int/long encodings of int64 values, vectorised."""
    zz = (values.astype(np.int64) << 1) ^ (values.astype(np.int64) >> 63)
    u = zz.view(np.uint64)
    n = len(u)
    groups = np.empty((n, _MAX_VARINT), dtype=np.uint8)
    lengths = np.ones(n, dtype=np.int64)
    rest = u.copy()
    for k in range(_MAX_VARINT):
        groups[:, k] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
        more = rest != 0
        groups[more, k] |= 0x80
        lengths += more
        if not more.any():
            break
    raw = groups.tobytes()
    step = _MAX_VARINT
    return [raw[i * step : i * step + k] for i, k in enumerate(lengths.tolist())]


def _encode_strings(name: str, values: Sequence[Any]) -> list[bytes]:
    out = []
    for v in values:
        try:
            b = v.encode()
        except AttributeError:
            raise ValueError(f"{name}: {v!r} is not a string") from None
        size = len(b)
        out.append((_LENGTHS[size] if size < 8192 else _varint(size)) + b)
    return out


def _encode_longs(name: str, values: Sequence[Any]) -> list[bytes]:
    arr = np.asarray(values)
    if len(arr) and (arr.dtype.kind not in "iu" or arr.dtype == np.bool_):
        raise ValueError(f"{name}: expected integers, got {arr.dtype} values")
    return _zigzag_varints(arr.astype(np.int64, copy=False))


def _encode_floats(dtype: str, width: int) -> Callable[[str, Sequence[Any]], list[bytes]]:
    def encode(name: str, values: Sequence[Any]) -> list[bytes]:
        arr = np.asarray(values)
        if len(arr) and arr.dtype.kind not in "fiu":
            raise ValueError(f"{name}: expected numbers, got {arr.dtype} values")
        raw = arr.astype(dtype).tobytes()
        return [raw[i : i + width] for i in range(0, len(raw), width)]

    return encode


def _encode_booleans(name: str, values: Sequence[Any]) -> list[bytes]:
    out = []
    for v in values:
        if v is True:
            out.append(b"\x01")
        elif v is False:
            out.append(b"\x00")
        else:
            raise ValueError(f"{name}: {v!r} is not a boolean")
    return out


_ENCODERS: dict[str, Callable[[str, Sequence[Any]], list[bytes]]] = {
    "string": _encode_strings,
    "long": _encode_longs,
    "int": _encode_longs,
    "double": _encode_floats("<f8", 8),
    "float": _encode_floats("<f4", 4),
    "boolean": _encode_booleans,
}


def _encode_array(items: str) -> Callable[[str, Sequence[Any]], list[bytes]]:
    """An array as one block: count, the items, then the 0 that ends the blocks."""
    encode_items = _ENCODERS[items]
    fixed = {"float": "<f4", "double": "<f8"}.get(items)

    def encode(name: str, values: Sequence[Any]) -> list[bytes]:
        if fixed and isinstance(values, np.ndarray) and values.ndim == 2:
            # a matrix of equal-length rows (embeddings): one header, rows as raw bytes
            count = values.shape[1]
            head = _varint(count) if count else b""
            raw = np.ascontiguousarray(values, dtype=fixed)
            return [head + row.tobytes() + b"\x00" if count else b"\x00" for row in raw]
        out = []
        for value in values:
            if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
                raise ValueError(f"{name}: {value!r} is not an array")
            if len(value) == 0:
                out.append(b"\x00")
                continue
            out.append(_varint(len(value)) + b"".join(encode_items(name, value)) + b"\x00")
        return out

    return encode


def _nullable(encode: Callable[[str, Sequence[Any]], list[bytes]]) -> Callable[..., list[bytes]]:
    """["null", T]: branch 0 (one byte 0x00) for None, else branch 1 (0x02) then T."""

    def encode_union(name: str, values: Sequence[Any]) -> list[bytes]:
        present = [i for i, v in enumerate(values) if v is not None]
        out = [b"\x00"] * len(values)
        for i, body in zip(present, encode(name, [values[i] for i in present]), strict=True):
            out[i] = b"\x02" + body
        return out

    return encode_union


class _Field:
    __slots__ = ("encode", "name", "schema")

    def __init__(self, field: Mapping[str, Any]) -> None:
        self.name: str = field["name"]
        kind = field["type"]
        if isinstance(kind, dict):
            kind = kind.get("type")
        if isinstance(field["type"], dict) and kind == "array":
            items = _base(field["type"].get("items"))
            if items not in _SUPPORTED:
                raise UnsupportedSchema(f"field {self.name!r}: only arrays of primitives")
            self.encode = _encode_array(items)
        elif isinstance(kind, list):
            if len(kind) != 2 or kind[0] != "null" or _base(kind[1]) not in _SUPPORTED:
                raise UnsupportedSchema(f"field {self.name!r}: only ['null', primitive] unions")
            self.encode = _nullable(_ENCODERS[_base(kind[1])])
        elif kind in _SUPPORTED:
            self.encode = _ENCODERS[kind]
        else:
            raise UnsupportedSchema(f"field {self.name!r} has type {field['type']!r}")
        self.schema = {"type": "record", "name": "One", "fields": [dict(field)]}


def _base(kind: Any) -> Any:
    return kind.get("type") if isinstance(kind, dict) else kind


class ColumnEncoder:
    """`encode(constants, columns)`: one framed Avro record per row of `columns`."""

    def __init__(self, registry: SchemaRegistry, schema: SchemaVersion, topic: str) -> None:
        definition = schema.definition
        if definition.get("type") != "record":
            raise UnsupportedSchema(f"{schema.name}: not a record")
        self.schema = schema
        self.fields = [_Field(f) for f in definition["fields"]]
        self.names = [f.name for f in self.fields]
        self._header = frame(registry.id_for(f"{topic}-value", schema), b"")
        self._parsed_one = {
            f.name: fastavro.parse_schema(f.schema, named_schemas={}) for f in self.fields
        }

    def _constant(self, name: str, value: Any) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._parsed_one[name], {name: value}, strict=True)
        return buffer.getvalue()

    def encode(
        self, constants: Mapping[str, Any], columns: Mapping[str, Sequence[Any]]
    ) -> list[bytes]:
        missing = [n for n in self.names if n not in constants and n not in columns]
        if missing:
            raise ValueError(f"{self.schema.name}: no value for {', '.join(missing)}")
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"{self.schema.name}: columns of different lengths {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
        segments: list[Any] = []
        pending = [self._header]  # consecutive per-batch bytes, merged into one segment
        for field in self.fields:
            if field.name in columns:
                if pending:
                    segments.append(itertools.repeat(b"".join(pending), rows))
                    pending = []
                segments.append(field.encode(field.name, columns[field.name]))
            else:
                try:
                    pending.append(self._constant(field.name, constants[field.name]))
                except Exception as exc:  # fastavro raises ValueError, TypeError, struct.error
                    raise ValueError(f"{field.name}: {exc}") from None
        if pending:
            segments.append(itertools.repeat(b"".join(pending), rows))
        join = b"".join
        return [join(parts) for parts in zip(*segments, strict=False)]
