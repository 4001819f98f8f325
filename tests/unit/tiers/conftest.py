"""A models directory of links to the repository's fraud versions, to write policies into."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT
from pipeline.core.registry import get_plugin
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.scoring.model_calls import ModelCaller
from pipeline.tiers.cascade import TierRouter
from pipeline.tiers.policy import PolicyWatcher

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


class Counting:
    """A LoadedModel that counts its calls and rows."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict(self, matrix):
        self.calls.append(len(matrix))
        return self.model.predict(matrix)


@pytest.fixture
def tiers(models_dir):
    loaded = {}

    def load(version):
        if version not in loaded:
            loaded[version] = Counting(load_model(resolve_model_dir(models_dir, "fraud", version)))
        return loaded[version]

    def router(policy):
        write(models_dir, policy)
        return TierRouter(
            load(LARGE), load, get_plugin("fraud").head, ModelCaller(5.0, 0),
            lambda hook: PolicyWatcher(models_dir, "fraud", "fraud-features/1", 0.0, hook),
        )  # fmt: skip

    return router, load
