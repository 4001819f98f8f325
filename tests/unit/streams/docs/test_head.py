from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from pipeline.core.exceptions import PluginError
from pipeline.models.exceptions import ModelIntegrityError
from pipeline.models.manifest import ModelManifest
from pipeline.streams.docs.head import document_head


def manifest_with_head(tmp_path, weights, bias, labels, dim=2, top_k=2) -> ModelManifest:
    np.savez(tmp_path / "head.npz", weights=weights, bias=bias, labels=np.array(labels))
    digest = hashlib.sha256((tmp_path / "head.npz").read_bytes()).hexdigest()
    data = {
        "name": "docs", "version": "1.0.0", "sha256": "00", "input_name": "input_ids",
        "output_name": "embedding", "input": {"kind": "tokens", "max_length": 8},
        "feature_names": ["token_ids"], "preprocessing_version": "p/1",
        "output": {"kind": "embedding", "dim": dim},
        "head": {"file": "head.npz", "sha256": digest, "top_k": top_k},
        "reference": {"file": "reference.npy", "rows": 1, "sha256": "00"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    return ModelManifest.load(tmp_path)


def test_labels_come_ranked_from_the_classifier_on_the_normalised_embedding(tmp_path):
    weights = np.array([[4.0, 0.0, 1.0], [0.0, 4.0, 1.0]], dtype=np.float32)
    manifest = manifest_with_head(tmp_path, weights, np.zeros(3, np.float32), ["x", "y", "z"])
    head = document_head(manifest)
    fields = head(np.array([[10.0, 0.0], [0.0, 0.3]]))  # pooled rows need not be unit length
    assert fields["label"] == ["x", "y"]
    assert fields["top_labels"] == [["x", "z"], ["y", "z"]]
    assert np.allclose(np.linalg.norm(fields["embedding"], axis=1), 1.0)
    assert fields["embedding"].dtype == np.float32
    probabilities = np.exp([4.0, 0.0, 1.0]) / np.exp([4.0, 0.0, 1.0]).sum()
    assert fields["label_score"][0] == pytest.approx(probabilities[0])
    assert fields["top_scores"][0] == pytest.approx([probabilities[0], probabilities[2]])


def test_a_head_that_does_not_fit_the_embedding_is_refused(tmp_path):
    manifest = manifest_with_head(tmp_path, np.zeros((3, 2)), np.zeros(2), ["a", "b"], dim=2)
    with pytest.raises(PluginError, match="do not fit 2 dims"):
        document_head(manifest)


def test_a_changed_head_file_is_refused(tmp_path):
    manifest = manifest_with_head(tmp_path, np.zeros((2, 2)), np.zeros(2), ["a", "b"])
    np.savez(tmp_path / "head.npz", weights=np.ones((2, 2)), bias=np.zeros(2),
             labels=np.array(["a", "b"]))
    with pytest.raises(ModelIntegrityError, match=r"head\.sha256"):
        document_head(manifest)
