"""models/build_fraud.py: a small build gives a model directory that loads and scores."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.models import load_model, resolve_model_dir
from pipeline.streams.fraud.features import FEATURE_NAMES

pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "models" / "build_fraud.py"


def _build_module():
    spec = importlib.util.spec_from_file_location("build_fraud", BUILD_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_build_writes_a_loadable_verified_model(tmp_path: Path) -> None:
    build = _build_module()
    args = ["--rows", "30000", "--seed", "5", "--version", "0.0.1-test", "--out-dir", str(tmp_path)]
    assert build.main(args) == 0
    model_dir = resolve_model_dir(tmp_path, "fraud", None)
    assert model_dir.name == "0.0.1-test"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["metrics"]["max_abs_diff_onnx_vs_sklearn"] < 1e-4
    assert manifest["training"]["seed"] == 5
    model = load_model(model_dir)
    expected = manifest["expected"]
    np.testing.assert_allclose(
        model.predict(model.reference[expected["reference_rows"]])[:, 1],
        expected["fraud_probability"],
        atol=1e-4,
    )


def test_thresholds_put_decline_at_high_precision() -> None:
    build = _build_module()
    rng = np.random.default_rng(0)
    y = rng.random(20_000) < 0.05
    scores = np.where(y, rng.beta(4, 2, 20_000), rng.beta(1, 8, 20_000))  # overlapping classes
    thresholds, at = build.choose_thresholds(y.astype(int), scores)
    assert thresholds["review"] < thresholds["decline"]
    assert at["decline"]["precision"] >= build.DECLINE_PRECISION
    assert at["review"]["recall"] > at["decline"]["recall"]


def test_version_must_be_semantic(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _build_module().main(["--version", "v1", "--out-dir", str(tmp_path)])
