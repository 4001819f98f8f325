"""Hypothesis strategies for values of a parsed Avro schema (what fastavro writes)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_INT = st.integers(-(2**31), 2**31 - 1)
_LONG = st.integers(-(2**63), 2**63 - 1)
_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": _INT,
    "long": _LONG,
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "string": st.text(max_size=40),
    "bytes": st.binary(max_size=40),
}


def values(schema: Any) -> st.SearchStrategy[Any]:
    """Values fastavro's strict writer accepts for `schema` (logical types as their base)."""
    if isinstance(schema, str):
        return _PRIMITIVES[schema]
    if isinstance(schema, list):  # a union: one branch
        return st.one_of([values(branch) for branch in schema])
    kind = schema["type"]
    if kind == "record":
        fields = {f["name"]: values(f["type"]) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values(schema["items"]), max_size=6)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), values(schema["values"]), max_size=4)
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    return values(kind)  # {"type": "long", "logicalType": ...}


def zigzag(n: int) -> bytes:
    """Avro's varint of `n` (any size: huge lengths and counts are the point)."""
    u = (n << 1) ^ (n >> 127) if n < 0 else n << 1
    out = bytearray()
    while u > 0x7F:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)
