"""The rings: a core that imports no transport and no stream; fraud lives only in its plug-in."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ("core", "codec", "models", "scoring", "drift")
# what the core must not import: transports, Faust, and the rings around it
FORBIDDEN_ROOTS = {"confluent_kafka", "aiokafka", "faust", "mode", "redis", "agents"}
FORBIDDEN_PIPELINE = ("pipeline.kafka", "pipeline.redis", "pipeline.engine", "pipeline.streams",
                      "pipeline.cli", "pipeline.stack", "pipeline.demo", "pipeline.assembly")
# the Schema Registry client is HTTP, not Kafka; its import is lazy (pipeline/codec/registry.py)
ALLOWED = {"confluent_kafka.schema_registry"}


def core_files() -> list[Path]:
    return sorted(p for package in CORE for p in (ROOT / "pipeline" / package).rglob("*.py"))


def imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def forbidden(name: str) -> bool:
    if name in ALLOWED or any(name.startswith(a + ".") for a in ALLOWED):
        return False
    return name.split(".")[0] in FORBIDDEN_ROOTS or name.startswith(FORBIDDEN_PIPELINE)


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_module_imports_a_transport_faust_or_a_stream(path: Path) -> None:
    assert [n for n in imported_names(path) if forbidden(n)] == []


def test_importing_the_whole_core_loads_no_transport() -> None:
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in core_files()
    ]
    script = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [m for m in loaded if forbidden(m)] == []


def test_fraud_is_named_only_by_its_plug_in_and_the_default_list() -> None:
    named = []
    for path in sorted([*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "agents").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(("pipeline/streams/fraud/", "pipeline/core/registry.py")):
            continue
        named += [f"{relative}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                  if "fraud" in line.lower()]
    assert named == []
