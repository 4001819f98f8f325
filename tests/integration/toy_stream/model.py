"""The toy stream's model: softmax(x @ W + b) as a tiny ONNX graph, with its model directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tests.integration.toy_stream import FEATURE_NAMES, PREPROCESSING_VERSION, features

VERSION = "0.1.0"
WEIGHTS = np.array([[-2.0, 2.0], [-1.0, 1.0]], dtype=np.float32)
BIAS = np.array([0.5, -0.5], dtype=np.float32)


def probabilities(matrix: np.ndarray) -> np.ndarray:
    """What the model computes, in numpy: the test's offline answer."""
    logits = matrix.astype(np.float64) @ WEIGHTS.astype(np.float64) + BIAS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def build(models_dir: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "toy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, len(FEATURE_NAMES)])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    directory = models_dir / "toy" / VERSION
    directory.mkdir(parents=True)
    raw = model.SerializeToString()
    (directory / "model.onnx").write_bytes(raw)
    reference = features(np.random.default_rng(0).normal(0.0, 100.0, 2000))
    np.save(directory / "reference.npy", reference)
    manifest = {
        "name": "toy",
        "version": VERSION,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "input_name": "features",
        "output_name": "probabilities",
        "feature_names": list(FEATURE_NAMES),
        "preprocessing_version": PREPROCESSING_VERSION,
        "thresholds": {"high": 0.5},
        "reference": {
            "file": "reference.npy",
            "rows": len(reference),
            "sha256": hashlib.sha256((directory / "reference.npy").read_bytes()).hexdigest(),
        },
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory
