"""The contracts in schemas/: documented, namespaced, and BACKWARD_TRANSITIVE compatible."""

import pytest

from pipeline.codec import SchemaCatalog
from pipeline.codec.compat import backward_transitive_problems, incompatibilities
from pipeline.config import REPO_ROOT

CATALOG = SchemaCatalog(REPO_ROOT / "schemas")


@pytest.mark.parametrize("name", CATALOG.names)
def test_every_version_reads_all_earlier_versions(name):
    assert backward_transitive_problems(CATALOG.versions(name)) == []


def _fields(schema):
    if isinstance(schema, dict):
        for field in schema.get("fields", ()):
            yield field
            yield from _fields(field["type"])
        if schema.get("type") == "array":
            yield from _fields(schema["items"])
    elif isinstance(schema, list):
        for branch in schema:
            yield from _fields(branch)


@pytest.mark.parametrize("version", CATALOG.all_versions(), ids=lambda v: v.path.name)
def test_every_schema_is_namespaced_and_every_field_documented(version):
    assert version.definition["namespace"].startswith("io.inferstream")
    assert version.definition.get("doc")
    undocumented = [f["name"] for f in _fields(version.definition) if not f.get("doc")]
    assert undocumented == []


def test_times_use_logical_types():
    for version in CATALOG.all_versions():
        for field in _fields(version.definition):
            if field["name"].endswith(("_time", "_at", "_timestamp")) or (
                field["name"].startswith("window_") and field["name"] != "window"
            ):
                assert field["type"] == {"type": "long", "logicalType": "timestamp-millis"}, field


BASE = {
    "type": "record",
    "name": "Thing",
    "namespace": "t",
    "fields": [
        {"name": "a", "type": "int"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
    ],
}


def evolve(**changes):
    schema = {**BASE, "fields": [dict(f) for f in BASE["fields"]]}
    for name, field in changes.items():
        schema["fields"] = [f for f in schema["fields"] if f["name"] != name]
        if field is not None:
            schema["fields"].append({"name": name, **field})
    return schema


@pytest.mark.parametrize(
    ("new", "ok"),
    [
        (evolve(b={"type": ["null", "string"], "default": None}), True),  # optional field added
        (evolve(b={"type": "string"}), False),  # required field added: old data lacks it
        (evolve(a={"type": "long"}), True),  # int promotes to long
        (evolve(a={"type": "string"}), False),  # int cannot be read as string
        (evolve(a=None), True),  # field removed: reader ignores it
        (evolve(e={"type": {"type": "enum", "name": "E", "symbols": ["X"]}}), False),
        (evolve(e={"type": {"type": "enum", "name": "E", "symbols": ["X"], "default": "X"}}), True),
        (evolve(a={"type": ["null", "int"], "default": None}), True),  # widened to a union
    ],
)
def test_compatibility_rules(new, ok):
    assert (incompatibilities(new, BASE) == []) is ok
