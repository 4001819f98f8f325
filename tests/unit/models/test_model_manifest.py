"""Model directories: the shipped fraud model's manifest, and finding versions."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.models import (
    ManifestError,
    ModelIntegrityError,
    ModelManifest,
    ModelNotFoundError,
    available_versions,
    resolve_model_dir,
)
from pipeline.streams.fraud.features import FEATURE_NAMES, PREPROCESSING_VERSION

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
FRAUD_DIR = MODELS_DIR / "fraud" / "1.0.0"


@pytest.fixture(scope="module")
def manifest() -> ModelManifest:
    return ModelManifest.load(FRAUD_DIR)


def test_manifest_sha256_matches_the_model_file(manifest: ModelManifest) -> None:
    assert manifest.sha256 == hashlib.sha256((FRAUD_DIR / "model.onnx").read_bytes()).hexdigest()
    reference = FRAUD_DIR / manifest.reference.file
    assert manifest.reference.sha256 == hashlib.sha256(reference.read_bytes()).hexdigest()


def test_shipped_model_matches_the_current_preprocessing(manifest: ModelManifest) -> None:
    assert (manifest.name, manifest.version) == ("fraud", "1.0.0")
    assert manifest.feature_names == FEATURE_NAMES
    assert manifest.preprocessing_version == PREPROCESSING_VERSION
    assert (manifest.input_name, manifest.output_name) == ("features", "probabilities")
    assert manifest.output["positive_column"] == 1


def test_held_out_quality_is_recorded_and_good_enough(manifest: ModelManifest) -> None:
    assert manifest.metrics["roc_auc"] >= 0.85
    assert 0.0 < manifest.metrics["pr_auc"] <= 1.0
    assert manifest.metrics["rows_test"] > 10_000
    assert 0 < manifest.thresholds["review"] < manifest.thresholds["decline"] < 1


def test_reference_sample_is_5000_float32_model_inputs(manifest: ModelManifest) -> None:
    reference = np.load(FRAUD_DIR / manifest.reference.file)
    assert reference.shape == (5000, len(FEATURE_NAMES)) == (manifest.reference.rows, 12)
    assert reference.dtype == np.float32
    assert np.isfinite(reference).all()


def test_artefacts_stay_small() -> None:
    assert sum(p.stat().st_size for p in FRAUD_DIR.iterdir()) < 2 * 1024 * 1024


def _write_manifest(model_dir: Path, data: dict) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("sha256", "missing field 'sha256'"),
        ("reference", "missing field 'reference.file'"),
        ("input_name", "missing field 'input_name'"),
    ],
)
def test_missing_fields_are_named(tmp_path: Path, path: str, message: str) -> None:
    data = json.loads((FRAUD_DIR / "manifest.json").read_text())
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    del node[last]
    _write_manifest(tmp_path, data)
    with pytest.raises(ManifestError, match=message.replace(".", r"\.")):
        ModelManifest.load(tmp_path)


def test_wrong_types_and_bad_thresholds_are_explained(tmp_path: Path) -> None:
    data = json.loads((FRAUD_DIR / "manifest.json").read_text())
    data["feature_names"] = "log_amount"
    _write_manifest(tmp_path, data)
    with pytest.raises(ManifestError, match="'feature_names' is str, expected list"):
        ModelManifest.load(tmp_path)
    data = json.loads((FRAUD_DIR / "manifest.json").read_text())
    data["output"] = [1]
    _write_manifest(tmp_path, data)
    with pytest.raises(ManifestError, match="'output' must be an object"):
        ModelManifest.load(tmp_path)


def test_thresholds_are_optional_for_the_core(tmp_path: Path) -> None:
    """Decisions are a stream head's business (fraud's: tests/unit/streams/fraud/test_head.py)."""
    data = json.loads((FRAUD_DIR / "manifest.json").read_text())
    del data["thresholds"], data["output"]
    _write_manifest(tmp_path, data)
    manifest = ModelManifest.load(tmp_path)
    assert manifest.thresholds == {} and manifest.output == {}


def test_no_manifest_and_broken_json_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest"):
        ModelManifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read manifest"):
        ModelManifest.load(tmp_path)


@pytest.fixture
def versions_dir(tmp_path: Path) -> Path:
    for version in ("0.9.9", "1.2.0", "1.10.0-rc.1", "1.10.0", "1.9.3"):
        shutil.copytree(FRAUD_DIR, tmp_path / "fraud" / version)
    (tmp_path / "fraud" / "2.0.0").mkdir()  # no manifest: not a usable version
    (tmp_path / "fraud" / "latest").mkdir()  # not a semantic version
    return tmp_path


def test_latest_version_is_chosen_by_semantic_version(versions_dir: Path) -> None:
    assert available_versions(versions_dir, "fraud") == [
        "0.9.9", "1.2.0", "1.9.3", "1.10.0-rc.1", "1.10.0",
    ]  # fmt: skip
    assert resolve_model_dir(versions_dir, "fraud", None) == versions_dir / "fraud" / "1.10.0"
    assert resolve_model_dir(versions_dir, "fraud", "1.2.0") == versions_dir / "fraud" / "1.2.0"


def test_unknown_version_error_lists_the_available_ones(versions_dir: Path) -> None:
    expected = r"no version '3\.0\.0'.*available: 0\.9\.9, 1\.2\.0"
    with pytest.raises(ModelNotFoundError, match=expected):
        resolve_model_dir(versions_dir, "fraud", "3.0.0")


def test_unknown_model_error_lists_the_models_there(versions_dir: Path) -> None:
    expected = r"no versions of model 'docs'.*models there: fraud"
    with pytest.raises(ModelNotFoundError, match=expected):
        resolve_model_dir(versions_dir, "docs", None)


def test_repository_models_dir_resolves_the_shipped_model() -> None:
    assert resolve_model_dir(MODELS_DIR, "fraud", None).name >= "1.0.0"


def test_a_token_input_is_read_and_a_bad_one_explained(tmp_path: Path) -> None:
    data = json.loads((FRAUD_DIR / "manifest.json").read_text())
    assert ModelManifest.from_dict(data).input.kind == "dense"  # no input section: dense
    data["input"] = {"kind": "tokens", "max_length": 256, "pad_id": 0}
    _write_manifest(tmp_path, data)
    manifest = ModelManifest.load(tmp_path)
    assert (manifest.input.kind, manifest.input.max_length) == ("tokens", 256)
    assert manifest.directory == tmp_path
    for bad, message in (({"kind": "pixels"}, "kind dense or tokens"),
                         ({"kind": "tokens", "max_length": 1}, "max_length >= 2")):
        data["input"] = bad
        _write_manifest(tmp_path, data)
        with pytest.raises(ManifestError, match=message):
            ModelManifest.load(tmp_path)


def test_attached_files_are_checked_against_their_sha256(tmp_path: Path) -> None:
    data = json.loads((FRAUD_DIR / "manifest.json").read_text())
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    digest = hashlib.sha256(b"[PAD]\n").hexdigest()
    data["tokenizer"] = {"file": "vocab.txt", "sha256": digest}
    _write_manifest(tmp_path, data)
    manifest = ModelManifest.load(tmp_path)
    assert manifest.attached_file("tokenizer") == tmp_path / "vocab.txt"
    (tmp_path / "vocab.txt").write_text("[UNK]\n")
    with pytest.raises(ModelIntegrityError, match=r"tokenizer\.sha256"):
        manifest.attached_file("tokenizer")
    with pytest.raises(ManifestError, match="no 'head' file"):
        manifest.attached_file("head")
