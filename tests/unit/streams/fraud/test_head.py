"""The fraud output head: probability -> score, thresholds from the manifest -> decision."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.models import ManifestError, ModelManifest
from pipeline.streams.fraud.head import decide, decision_head

FRAUD_DIR = Path(__file__).resolve().parents[4] / "models" / "fraud" / "1.0.0"


@pytest.fixture(scope="module")
def manifest() -> ModelManifest:
    return ModelManifest.from_dict(json.loads((FRAUD_DIR / "manifest.json").read_text()))


def test_decisions_follow_the_thresholds(manifest: ModelManifest) -> None:
    review, decline = manifest.thresholds["review"], manifest.thresholds["decline"]
    scores = np.array([0.0, np.nextafter(review, 0), review, (review + decline) / 2,
                       np.nextafter(decline, 0), decline, 1.0])  # fmt: skip
    outputs = np.column_stack([1 - scores, scores])
    fields = decision_head(manifest)(outputs)
    np.testing.assert_array_equal(fields["score"], scores)  # the positive column, not column 0
    assert list(fields["decision"]) == [
        "approve", "approve", "review", "review", "review", "decline", "decline",
    ]  # fmt: skip
    assert decide([], review, decline) == []
    assert all(type(d) is str for d in fields["decision"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"thresholds": {"review": 0.9, "decline": 0.5}}, "review <= decline"),
        ({"thresholds": {"review": 0.1}}, "'thresholds.decline' must be numbers"),
        ({"output": {"kind": "class_probabilities"}}, "'output.positive_column'"),
        ({"output": {"positive_column": -1}}, "'output.positive_column'"),
    ],
)
def test_a_manifest_without_what_the_head_needs_is_refused(
    manifest: ModelManifest, change: dict, message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        decision_head(replace(manifest, **change))
