"""A models directory of links to the repository's fraud versions, to write policies into."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT

FRAUD = REPO_ROOT / "models" / "fraud"
SMALL, LARGE, CANDIDATE = "1.0.0-small.1", "1.0.0", "1.0.0-candidate.1"


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "fraud").mkdir(parents=True)
    for entry in FRAUD.iterdir():
        if entry.name != "routing.json":
            (root / "fraud" / entry.name).symlink_to(entry)
    return root


def write(models_dir: Path, policy: object) -> Path:
    path = models_dir / "fraud" / "routing.json"
    path.write_text(json.dumps(policy) if not isinstance(policy, str) else policy)
    return path
