"""manifest reference.order: do the reference rows keep the stream's order (drift calibration)."""

from __future__ import annotations

import json

import pytest

from pipeline.config import REPO_ROOT
from pipeline.models.exceptions import ManifestError
from pipeline.models.manifest import ModelManifest

FRAUD = REPO_ROOT / "models" / "fraud" / "1.0.0" / "manifest.json"


def _manifest(**reference) -> dict:
    data = json.loads(FRAUD.read_text())
    data["reference"] = {k: v for k, v in {**data["reference"], **reference}.items() if v}
    return data


def test_the_fraud_reference_is_in_arrival_order() -> None:
    assert ModelManifest.from_dict(_manifest()).reference.order == "arrival"


def test_order_defaults_to_unordered() -> None:
    assert ModelManifest.from_dict(_manifest(order=None)).reference.order == "unordered"


def test_an_unknown_order_is_refused_naming_the_field() -> None:
    with pytest.raises(ManifestError, match=r"reference\.order.*'sorted'.*unordered, arrival"):
        ModelManifest.from_dict(_manifest(order="sorted"), source="m.json")
