"""The fraud output head: positive-class probability -> `score`, thresholds -> `decision`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.models.exceptions import ManifestError
from pipeline.models.manifest import ModelManifest

DECISIONS = np.array(["approve", "review", "decline"], dtype=object)


def decision_head(manifest: ModelManifest) -> Any:
    """A head for `manifest`: its `output.positive_column` and `thresholds.review/decline`."""
    source = f"model {manifest.name} {manifest.version}"
    column = manifest.output.get("positive_column")
    if not isinstance(column, int) or isinstance(column, bool) or column < 0:
        raise ManifestError(f"{source}: field 'output.positive_column' must be an integer >= 0")
    try:
        review = float(manifest.thresholds["review"])
        decline = float(manifest.thresholds["decline"])
    except (KeyError, TypeError, ValueError):
        raise ManifestError(
            f"{source}: fields 'thresholds.review' and 'thresholds.decline' must be numbers"
        ) from None
    if not 0.0 <= review <= decline <= 1.0:
        raise ManifestError(
            f"{source}: thresholds must satisfy 0 <= review <= decline <= 1, "
            f"got review={review:g}, decline={decline:g}"
        )

    def head(outputs: np.ndarray) -> Mapping[str, Sequence[Any] | np.ndarray]:
        scores = np.ascontiguousarray(outputs[:, column])
        return {"score": scores, "decision": decide(scores, review, decline)}

    return head


def decide(scores: np.ndarray | Sequence[float], review: float, decline: float) -> list[str]:
    """"approve", "review" or "decline" per score: `>= decline` declined, `>= review` reviewed."""
    values = np.asarray(scores, dtype=np.float64)
    level = (values >= review).astype(np.intp) + (values >= decline)
    return DECISIONS[level].tolist()
