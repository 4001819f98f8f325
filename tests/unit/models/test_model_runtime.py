"""Loading and running the shipped fraud model with ONNX Runtime."""

from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pipeline.models import (
    ExecutionProviderError,
    LoadedModel,
    ModelIntegrityError,
    RuntimeNotInstalledError,
    load_model,
    resolve_model_dir,
)
from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator

pytest.importorskip("onnxruntime")

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
FRAUD_DIR = MODELS_DIR / "fraud" / "1.0.0"


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(FRAUD_DIR)


def test_loads_verified_and_records_its_provider(model: LoadedModel) -> None:
    import onnxruntime

    assert model.sha256 == model.manifest.sha256
    assert model.provider in onnxruntime.get_available_providers()
    assert model.provider == model.session.get_providers()[0]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert model.provider == "CPUExecutionProvider"


def test_predict_matches_the_probabilities_scikit_learn_gave(model: LoadedModel) -> None:
    expected = model.manifest.expected
    rows = expected["reference_rows"]
    scores = model.predict(model.reference[rows])[:, 1]
    np.testing.assert_allclose(scores, expected["fraud_probability"], atol=expected["tolerance"])
    assert max(expected["fraud_probability"]) > 0.5 > min(expected["fraud_probability"])


def test_predict_returns_the_output_as_float64_rows(model: LoadedModel) -> None:
    scores = model.predict(model.reference[:300])
    assert scores.dtype == np.float64 and scores.shape == (300, 2) == (300, model.output_width)
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)  # class probabilities
    # float64 input is accepted (cast to the model's float32) and gives the same scores
    np.testing.assert_array_equal(model.predict(model.reference[:300].astype(np.float64)), scores)
    assert model.predict(np.zeros((0, 12), np.float32)).shape == (0, 2)
    with pytest.raises(ValueError, match=r"expects inputs of shape \[n, 12\], got \[4, 11\]"):
        model.predict(np.zeros((4, 11), np.float32))


def test_scores_separate_fresh_fraud_from_legitimate_transactions(model: LoadedModel) -> None:
    from sklearn.metrics import roc_auc_score

    batch = TransactionGenerator(seed=987).generate(40_000)
    features = build_features(batch.records)
    scores = model.predict(features.matrix)[:, 1]
    assert roc_auc_score(batch.labels[features.valid_index], scores) >= 0.85


def test_predict_is_safe_from_a_thread_pool(model: LoadedModel) -> None:
    chunks = [model.reference[i : i + 256] for i in range(0, 2560, 256)]
    serial = [model.predict(c) for c in chunks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(model.predict, chunks))
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_tampered_model_file_is_refused_naming_both_hashes(tmp_path: Path) -> None:
    model_dir = shutil.copytree(FRAUD_DIR, tmp_path / "1.0.0")
    data = bytearray((model_dir / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model_dir / "model.onnx").write_bytes(bytes(data))
    manifest_sha = load_model(FRAUD_DIR, warmup_rows=0).manifest.sha256
    with pytest.raises(ModelIntegrityError) as error:
        load_model(model_dir)
    assert manifest_sha in str(error.value)
    assert "does not match" in str(error.value)


def test_tampered_reference_sample_is_refused(tmp_path: Path) -> None:
    model_dir = shutil.copytree(FRAUD_DIR, tmp_path / "1.0.0")
    reference = np.load(model_dir / "reference.npy")
    reference[0, 0] += 1.0
    np.save(model_dir / "reference.npy", reference)
    with pytest.raises(ModelIntegrityError, match="reference"):
        load_model(model_dir)


def test_cpu_provider_can_be_forced(model: LoadedModel) -> None:
    forced = load_model(FRAUD_DIR, providers=["CPUExecutionProvider"], intra_op_threads=2)
    assert forced.provider == "CPUExecutionProvider"
    # the comma-list form of INFERSTREAM_EXECUTION_PROVIDERS works too
    from_env_style = load_model(FRAUD_DIR, providers="CPUExecutionProvider")
    assert from_env_style.provider == "CPUExecutionProvider"
    np.testing.assert_allclose(
        forced.predict(model.reference[:64]), model.predict(model.reference[:64]), atol=1e-6
    )


def test_unknown_provider_is_a_clear_error() -> None:
    expected = "unknown execution provider 'FooExecutionProvider'; known providers: "
    with pytest.raises(ExecutionProviderError, match=expected):
        load_model(FRAUD_DIR, providers=["FooExecutionProvider"])


def test_provider_missing_from_this_build_is_a_clear_error() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ExecutionProviderError, match="'CUDAExecutionProvider' is not available"):
        load_model(FRAUD_DIR, providers=["CUDAExecutionProvider"])


def test_missing_onnxruntime_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(RuntimeNotInstalledError, match=r"inferstream\[cpu\].*inferstream\[gpu\]"):
        load_model(resolve_model_dir(MODELS_DIR, "fraud", None))
