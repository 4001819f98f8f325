"""The contracts in schemas/: documented, namespaced, and BACKWARD_TRANSITIVE compatible.

The compatibility check is also run over fixture histories (fixtures/compatible,
fixtures/incompatible), so that it is seen to fail on an incompatible version and pass a
compatible one while most contracts have only a v1.
"""

import json
from pathlib import Path

import pytest

from pipeline.codec import SchemaCatalog
from pipeline.codec.compat import backward_transitive_problems, incompatibilities
from pipeline.config import REPO_ROOT

CATALOG = SchemaCatalog(REPO_ROOT / "schemas")
FIXTURES = Path(__file__).parent / "fixtures"
COMPATIBLE = SchemaCatalog(FIXTURES / "compatible")
INCOMPATIBLE = SchemaCatalog(FIXTURES / "incompatible")


def compatibility_problems(catalog, name):
    """The BACKWARD_TRANSITIVE check of one contract: what schemas/ is held to."""
    return backward_transitive_problems(catalog.versions(name))


@pytest.mark.parametrize("name", CATALOG.names)
def test_every_version_reads_all_earlier_versions(name):
    assert compatibility_problems(CATALOG, name) == []


def test_the_check_over_schemas_compares_versions():
    """Not vacuous: some contract of schemas/ has more than one version (provenance_record)."""
    assert any(len(CATALOG.versions(name)) > 1 for name in CATALOG.names)
    assert [v.version for v in CATALOG.versions("provenance_record")][:2] == [1, 2]


@pytest.mark.parametrize("name", COMPATIBLE.names)
def test_the_check_passes_a_compatible_history(name):
    """v2 adds an optional field with a default; v3 promotes int to long and drops a field."""
    assert len(COMPATIBLE.versions(name)) >= 3
    assert compatibility_problems(COMPATIBLE, name) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "added_required",
            "added_required.v2.avsc reading added_required.v1.avsc: "
            "/region: new field without a default",
        ),
        (
            "changed_type",
            "changed_type.v2.avsc reading changed_type.v1.avsc: "
            "/amount: double cannot be read as int",
        ),
        # v3 reads v2 (which has no `code`), not v1 (an int `code`): only transitively wrong
        (
            "transitive",
            "transitive.v3.avsc reading transitive.v1.avsc: /code: int cannot be read as string",
        ),
    ],
)
def test_the_check_reports_an_incompatible_history(name, expected):
    assert compatibility_problems(INCOMPATIBLE, name) == [expected]


def test_an_incompatible_version_is_caught_among_the_real_schemas(tmp_path):
    """The same check over a copy of schemas/ plus a provenance_record version that adds a
    field without a default: reported, naming the new file and the field."""
    for path in (REPO_ROOT / "schemas").glob("*.avsc"):
        (tmp_path / path.name).write_text(path.read_text())
    latest = CATALOG.latest("provenance_record")
    broken = {**latest.definition, "fields": [*latest.definition["fields"]]}
    broken["fields"].append({"name": "region", "type": "string", "doc": "No default."})
    new_file = f"provenance_record.v{latest.version + 1}.avsc"
    (tmp_path / new_file).write_text(json.dumps(broken))
    problems = compatibility_problems(SchemaCatalog(tmp_path), "provenance_record")
    assert problems and all(p.startswith(f"{new_file} reading ") for p in problems), problems
    assert all(p.endswith("/region: new field without a default") for p in problems), problems
    assert len(problems) == len(CATALOG.versions("provenance_record"))  # one per older version


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
