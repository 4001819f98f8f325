"""Pooled embeddings -> result fields: the normalised embedding and the classifier's labels.

The classifier is a multinomial logistic regression trained by models/build_docs.py on the
embeddings (its weights in the model directory's head.npz, listed with its sha256 in the
manifest): probabilities = softmax(embedding @ weights + bias).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.core.exceptions import PluginError
from pipeline.models.manifest import ModelManifest


def document_head(manifest: ModelManifest) -> Any:
    output = manifest.output
    if output.get("kind") != "embedding" or not isinstance(output.get("dim"), int):
        raise PluginError(
            f"model {manifest.name} {manifest.version}: the docs stream needs an "
            "'embedding' output with a dim"
        )
    section = manifest.sections.get("head") or {}
    with np.load(manifest.attached_file("head"), allow_pickle=False) as saved:
        weights = np.asarray(saved["weights"], dtype=np.float64)
        bias = np.asarray(saved["bias"], dtype=np.float64)
        labels = np.asarray(saved["labels"]).astype(str)
    dim = output["dim"]
    if weights.shape != (dim, len(labels)) or bias.shape != (len(labels),):
        raise PluginError(
            f"model {manifest.name} {manifest.version}: head.npz shapes {weights.shape}, "
            f"{bias.shape} do not fit {dim} dims and {len(labels)} labels"
        )
    top_k = max(1, min(int(section.get("top_k", 3)), len(labels)))

    def head(outputs: np.ndarray) -> Mapping[str, Any]:
        norms = np.linalg.norm(outputs, axis=1, keepdims=True)
        embedding = outputs / np.maximum(norms, 1e-12)  # pooled chunks: unit length again
        logits = embedding @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        top_scores = np.take_along_axis(probabilities, top, axis=1)
        return {
            "label": labels[top[:, 0]].tolist(),
            "label_score": top_scores[:, 0],
            "top_labels": labels[top].tolist(),
            "top_scores": top_scores.tolist(),
            "embedding": embedding.astype(np.float32),
        }

    return head
