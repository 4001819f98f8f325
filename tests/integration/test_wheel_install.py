"""A built wheel, installed into a fresh venv, is a working `inferstream` outside the checkout.

The wheel is built from a copy of the working tree and installed with `--no-deps` into a new
venv that reuses this environment's dependencies (a `.pth` line naming its site-packages, so
its own `.pth` files, the editable install's finder among them, are not run). Everything below
then runs from a temporary directory, without PYTHONPATH, through the installed commands: the
worker must start on the data installed with the package (schemas, model) and score requests,
and its import log must show the installed modules, never the checkout's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from collections import deque
from collections.abc import Mapping
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT

pytestmark = pytest.mark.integration

# what a source tree copy for the build leaves out: local state, caches, build outputs
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".ruff_cache", ".stack", "results",
)  # fmt: skip


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 300)
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def _backend_builds_offline() -> bool:
    """This environment's setuptools can build a wheel itself (no isolated build env)."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)  # bdist_wheel moved into setuptools


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO_ROOT, source, ignore=COPY_IGNORE)
    argv = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(work)]
    if _backend_builds_offline():
        argv.append("--no-build-isolation")
    built = _run(argv)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (path,) = work.glob("inferstream-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (no dependencies), then this env's packages."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    made = _run([sys.executable, "-m", "venv", str(root)])
    assert made.returncode == 0, made.stderr
    python = root / "bin" / "python"
    # installed before the .pth below exists, so pip sees only the fresh venv
    installed = _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        env=clean_env(os.environ),
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert (root / "bin" / "inferstream").exists()
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    deps = sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    (Path(site.stdout.strip()) / "_inferstream_test_deps.pth").write_text(
        "".join(f"{p}\n" for p in deps)
    )
    return root


def clean_env(base: Mapping[str, str], venv: Path | None = None) -> dict[str, str]:
    """`base` without anything that points Python at the checkout; `venv`'s bin/ first."""
    env = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    return env


def test_wheel_carries_the_data_and_only_the_product(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "pipeline/_data"
    schemas = sorted(p.name for p in (REPO_ROOT / "schemas").glob("*.avsc"))
    assert schemas and {f"{data}/schemas/{s}" for s in schemas} <= names
    model_files = [p for p in (REPO_ROOT / "models").glob("*/*/*") if p.is_file()]
    assert {"model.onnx", "manifest.json"} <= {p.name for p in model_files}
    for path in model_files:
        assert f"{data}/models/{path.relative_to(REPO_ROOT / 'models')}" in names
    assert f"{data}/ops/kafka/pom.xml" in names
    calibrations = list((REPO_ROOT / "pipeline" / "drift" / "calibrations").glob("*.json"))
    assert calibrations
    for path in calibrations:
        assert f"pipeline/drift/calibrations/{path.name}" in names
    assert {n.split("/")[0] for n in names} == {"pipeline", "agents", "inferstream-0.1.0.dist-info"}
    entry_points = zipfile.ZipFile(wheel).read("inferstream-0.1.0.dist-info/entry_points.txt")
    assert "inferstream = pipeline.cli:main" in entry_points.decode()


def test_installed_package_finds_its_data_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, os, sys\n"
        "import pipeline, pipeline.config as c, pipeline.stack.kafka as k\n"
        "s = c.Settings.from_env()\n"
        "print(json.dumps({'file': pipeline.__file__, 'data': str(c.DATA_ROOT),\n"
        "    'schemas': str(s.schemas_dir), 'models': str(s.models_dir), 'pom': str(k.POM),\n"
        "    'pom_ok': k.POM.is_file(), 'bench': importlib.util.find_spec('bench') is not None,\n"
        "    'pipelines': [os.path.join(p or os.getcwd(), 'pipeline') for p in sys.path\n"
        "                  if os.path.isdir(os.path.join(p or os.getcwd(), 'pipeline'))]}))\n"
    )
    env = {k: v for k, v in clean_env(os.environ, venv).items() if not k.startswith("INFERSTREAM")}
    run = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    package = Path(found["file"]).parent
    assert package.is_relative_to(venv), found["file"]
    assert Path(found["data"]) == package / "_data"
    assert Path(found["schemas"]) == package / "_data" / "schemas"
    assert Path(found["models"]) == package / "_data" / "models"
    assert Path(found["pom"]) == package / "_data" / "ops" / "kafka" / "pom.xml"
    assert found["pom_ok"]
    assert not found["bench"], "bench/ is not installed and not importable outside a checkout"
    # no other `pipeline` (the checkout's) anywhere on its sys.path
    assert found["pipelines"] == [str(package)], found["pipelines"]
    # the installed CLI has no bench command
    help_text = _run([str(venv / "bin" / "inferstream"), "--help"], cwd=tmp_path, env=env)
    assert help_text.returncode == 0, help_text.stderr
    assert "worker" in help_text.stdout and "bench" not in help_text.stdout


class InstalledWorker:
    """`<venv>/bin/inferstream worker` from `cwd`, with Python's import log (-v) on stderr."""

    def __init__(self, venv: Path, env: dict[str, str], cwd: Path) -> None:
        self.lines: deque[str] = deque()
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "inferstream"), "worker", "--streams", "fraud"],
            cwd=cwd,
            env={**env, "PYTHONVERBOSE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if line.startswith("{"):
                try:
                    if json.loads(line).get("event") == "ready":
                        self.ready.set()
                except ValueError:
                    pass

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def log_tail(self) -> str:
        return "\n".join(line for line in list(self.lines) if not line.startswith("#"))[-4000:]


def test_installed_worker_scores_requests_from_outside_the_checkout(
    venv: Path, env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    env = clean_env(env, venv)
    inferstream = str(venv / "bin" / "inferstream")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([inferstream, *args], cwd=tmp_path, env=env, timeout=180)

    ensured = cli("topics", "ensure", "--streams", "fraud")
    assert ensured.returncode == 0, ensured.stderr
    worker = InstalledWorker(venv, env, tmp_path)
    try:
        assert worker.wait_ready(120), "worker did not become ready:\n" + worker.log_tail()
        produced = cli("produce", "fraud", "--count", "20", "--seed", "5")
        assert produced.returncode == 0, produced.stderr
        requests = cli("tail", f"{namespace}fraud.requests", "--max", "20", "--from-beginning")
        assert requests.returncode == 0, requests.stderr
        sent = {json.loads(line)["request_id"] for line in requests.stdout.splitlines()}
        assert len(sent) == 20
        results = cli("tail", f"{namespace}fraud.results", "--max", "20", "--from-beginning")
        assert results.returncode == 0, results.stderr + "\n" + worker.log_tail()
        scored = [json.loads(line) for line in results.stdout.splitlines()]
    finally:
        worker.stop()
    assert {r["request_id"] for r in scored} == sent, worker.log_tail()
    assert all(r["model_name"] == "fraud" and 0 <= r["score"] <= 1 for r in scored), scored[:3]

    # the worker ran the installed code: every pipeline/agents module it loaded is the venv's
    lines = list(worker.lines)
    checkout = (str(REPO_ROOT / "pipeline"), str(REPO_ROOT / "agents"))
    assert not [line for line in lines if any(c in line for c in checkout)], "checkout's code"
    sources = {
        Path(path)
        for line in lines
        if line.startswith("#")  # `python -v`: "# <cached .pyc> matches <source .py>", ...
        for path in re.findall(r"(/\S+?\.py)\b", line)
    }
    ours = {p for p in sources if _top_package(p) in ("pipeline", "agents")}
    assert Path("pipeline", "config.py").parts in {p.parts[-2:] for p in ours}, lines[-50:]
    assert any(_top_package(p) == "agents" for p in ours)
    assert all(p.is_relative_to(venv) for p in ours), sorted(map(str, ours))[:10]


def _top_package(path: Path) -> str | None:
    """The top-level package of a module file under a site-packages directory."""
    parts = path.parts
    if "site-packages" not in parts or parts.index("site-packages") + 2 > len(parts) - 1:
        return None
    return parts[parts.index("site-packages") + 1]
