"""ColumnEncoder: the same bytes as fastavro, with per-batch fields encoded once."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.codec import AvroDeserializer, AvroSerializer, SchemaCatalog
from pipeline.codec.columns import ColumnEncoder, UnsupportedSchema
from pipeline.codec.registry import LocalRegistry
from pipeline.config import REPO_ROOT

REGISTRY = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))


def random_value(kind, rng: random.Random):
    if isinstance(kind, list):  # ["null", T]
        return None if rng.random() < 0.3 else random_value(kind[1], rng)
    if isinstance(kind, dict) and kind["type"] == "array":
        return [random_value(kind["items"], rng) for _ in range(rng.choice([0, 1, 3, 384]))]
    if isinstance(kind, dict):
        kind = kind["type"]
    if kind == "string":
        size = rng.choice([0, 1, 63, 64, 65, 200, 9000])
        return "".join(rng.choice("abcé€😀") for _ in range(size))
    if kind == "long":
        return rng.choice([0, -1, 1, 63, 64, -64, -65, 2**62, -(2**63), 2**63 - 1,
                           rng.randint(-(2**63), 2**63 - 1)])
    if kind == "int":
        return rng.randint(-(2**31), 2**31 - 1)
    if kind == "double":
        return rng.choice([0.0, -0.0, 1e-300, rng.uniform(-1e9, 1e9), float("inf"), 3])
    if kind == "float":  # values float32 holds exactly
        return rng.choice([0.0, -0.5, 1.25, 3e-5 * 2**-10, 65504.0])
    if kind == "boolean":
        return rng.random() < 0.5
    raise AssertionError(kind)


@pytest.mark.parametrize("schema_name", ["inference_result", "provenance_record", "docs_result"])
@pytest.mark.parametrize("seed", range(5))
def test_bytes_equal_fastavro_for_random_records(schema_name, seed):
    rng = random.Random(seed)
    schema = REGISTRY.catalog.latest(schema_name)
    fields = schema.definition["fields"]
    constant_names = {f["name"] for f in fields if rng.random() < 0.5}
    rows = rng.choice([1, 2, 37, 256])
    constants = {f["name"]: random_value(f["type"], rng) for f in fields
                 if f["name"] in constant_names}
    columns = {f["name"]: [random_value(f["type"], rng) for _ in range(rows)]
               for f in fields if f["name"] not in constant_names}
    got = ColumnEncoder(REGISTRY, schema, "t.results").encode(constants, columns)
    reference = AvroSerializer(REGISTRY, schema, "t.results")
    expected = [reference({**constants, **{k: v[i] for k, v in columns.items()}})
                for i in range(rows)]
    assert got == expected
    decoded = AvroDeserializer(REGISTRY, logical_types=False)(got[-1])
    assert set(decoded) == {f["name"] for f in fields}


def test_an_embedding_matrix_encodes_like_its_rows_as_lists():
    schema = REGISTRY.catalog.latest("docs_result")
    encode = ColumnEncoder(REGISTRY, schema, "t.results")
    rng = np.random.default_rng(3)
    embedding = rng.standard_normal((4, 384)).astype(np.float32)
    fields = schema.definition["fields"]
    constants = {f["name"]: random_value(f["type"], random.Random(1)) for f in fields
                 if f["name"] != "embedding"}
    as_matrix = encode.encode(constants, {"embedding": embedding})
    as_lists = encode.encode(constants, {"embedding": [row.tolist() for row in embedding]})
    assert as_matrix == as_lists
    decoded = AvroDeserializer(REGISTRY, logical_types=False)(as_matrix[2])
    assert np.array_equal(np.asarray(decoded["embedding"], dtype=np.float32), embedding[2])


def encoder() -> ColumnEncoder:
    return ColumnEncoder(REGISTRY, REGISTRY.catalog.latest("inference_result"), "t.results")


CONSTANTS = {"model_name": "m", "model_version": "1", "served_at": 5, "degraded": False}
COLUMNS = {"request_id": ["a", "b"], "key": ["k", None], "tenant": [None, None],
           "score": [0.5, 0.25], "decision": ["approve", "review"], "latency_ms": [1.0, 2.0]}


def test_no_rows_no_records():
    assert encoder().encode(CONSTANTS, {k: [] for k in COLUMNS}) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": ["high", 0.1]}, "score"),
        ({"request_id": [1, "b"]}, "request_id"),
        ({"key": [3, None]}, "key"),
        ({"decision": ["a"]}, "different lengths"),
    ],
)
def test_a_wrong_column_raises_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        encoder().encode(CONSTANTS, {**COLUMNS, **change})


def test_a_missing_field_or_a_wrong_constant_raises():
    with pytest.raises(ValueError, match="latency_ms"):
        encoder().encode(CONSTANTS, {k: v for k, v in COLUMNS.items() if k != "latency_ms"})
    with pytest.raises(ValueError, match="served_at"):
        encoder().encode({**CONSTANTS, "served_at": "now"}, COLUMNS)
    with pytest.raises(ValueError, match="degraded"):
        encoder().encode(CONSTANTS, {**COLUMNS, "degraded": [1, 0]})


def test_schemas_it_cannot_encode_are_refused_up_front(tmp_path):
    (tmp_path / "nested.v1.avsc").write_text(
        '{"type": "record", "name": "N", "fields": [{"name": "xs", "type": '
        '{"type": "map", "values": "long"}}]}'
    )
    registry = LocalRegistry(SchemaCatalog(tmp_path))
    with pytest.raises(UnsupportedSchema, match="xs"):
        ColumnEncoder(registry, registry.catalog.latest("nested"), "t")
