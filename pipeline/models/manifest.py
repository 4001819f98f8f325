"""Model directories and their manifest.json: what a model is, expects and outputs.

Layout: `<models_dir>/<name>/<semantic version>/{model.onnx, manifest.json, <reference>.npy}`.
Written by the build scripts under models/ (see models/README.md for every field).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.models.exceptions import ManifestError, ModelNotFoundError

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


@dataclass(frozen=True)
class ReferenceSample:
    """Model inputs (float32 .npy) drawn from held-out, drift-free data, for drift detection."""

    file: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class ModelManifest:
    name: str
    version: str
    sha256: str  # of model.onnx
    input_name: str
    output_name: str
    feature_names: tuple[str, ...]
    preprocessing_version: str
    reference: ReferenceSample
    # what the output means and how it becomes result fields: read by the stream's output head
    output: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    expected: Mapping[str, Any] = field(default_factory=dict)
    created_by: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = MANIFEST_FILE) -> ModelManifest:
        """Parse a manifest, raising ManifestError naming `source` and the bad field."""

        def need(path: str, kind: type | tuple[type, ...]) -> Any:
            node: Any = data
            for part in path.split("."):
                if not isinstance(node, Mapping) or part not in node:
                    raise ManifestError(f"{source}: missing field {path!r}")
                node = node[part]
            if not isinstance(node, kind) or isinstance(node, bool):
                names = kind.__name__ if isinstance(kind, type) else "/".join(
                    k.__name__ for k in kind
                )
                raise ManifestError(
                    f"{source}: field {path!r} is {type(node).__name__}, expected {names}"
                )
            return node

        feature_names = need("feature_names", list)
        if not feature_names or not all(isinstance(n, str) for n in feature_names):
            raise ManifestError(f"{source}: field 'feature_names' must be a non-empty string list")
        version = need("version", str)
        if not _SEMVER.match(version):
            raise ManifestError(f"{source}: version {version!r} is not a semantic version")
        for optional in ("output", "thresholds"):
            if not isinstance(data.get(optional, {}), Mapping):
                raise ManifestError(f"{source}: field {optional!r} must be an object")
        return cls(
            name=need("name", str),
            version=version,
            sha256=need("sha256", str).lower(),
            input_name=need("input_name", str),
            output_name=need("output_name", str),
            feature_names=tuple(feature_names),
            preprocessing_version=need("preprocessing_version", str),
            output=dict(data.get("output") or {}),
            thresholds=dict(data.get("thresholds") or {}),
            reference=ReferenceSample(
                file=need("reference.file", str),
                rows=need("reference.rows", int),
                sha256=need("reference.sha256", str).lower(),
            ),
            metrics=dict(data.get("metrics") or {}),
            training=dict(data.get("training") or {}),
            expected=dict(data.get("expected") or {}),
            created_by=str(data.get("created_by") or ""),
        )

    @classmethod
    def load(cls, model_dir: Path) -> ModelManifest:
        path = Path(model_dir) / MANIFEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{path}: no manifest; is {model_dir} a model directory?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: cannot read manifest: {exc}") from None
        if not isinstance(data, Mapping):
            raise ManifestError(f"{path}: expected a JSON object")
        return cls.from_dict(data, source=str(path))


def semver_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """Sort key for semantic versions: numeric parts, and a pre-release sorts before its release."""
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"{version!r} is not a semantic version like 1.2.3")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return int(major), int(minor), int(patch), 1, ()
    # Pre-release identifiers compare numerically when numeric, numbers before words (semver 11).
    idents = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return int(major), int(minor), int(patch), 0, idents


def available_versions(models_dir: Path, name: str) -> list[str]:
    """Versions of model `name` that have a manifest, oldest first."""
    base = Path(models_dir) / name
    if not base.is_dir():
        return []
    found = [
        d.name for d in base.iterdir()
        if d.is_dir() and _SEMVER.match(d.name) and (d / MANIFEST_FILE).is_file()
    ]  # fmt: skip
    return sorted(found, key=semver_key)


def resolve_model_dir(models_dir: Path, name: str, version: str | None = None) -> Path:
    """Directory of model `name` at `version`, or at its highest semantic version when None."""
    versions = available_versions(models_dir, name)
    if not versions:
        names = sorted(
            d.name for d in Path(models_dir).iterdir() if d.is_dir() and not d.name.startswith(".")
        ) if Path(models_dir).is_dir() else []  # fmt: skip
        raise ModelNotFoundError(
            f"no versions of model {name!r} under {models_dir}"
            + (f" (models there: {', '.join(names)})" if names else "")
        )
    if version is None:
        return Path(models_dir) / name / versions[-1]
    if version not in versions:
        raise ModelNotFoundError(
            f"model {name!r} has no version {version!r} under {models_dir}; "
            f"available: {', '.join(versions)}"
        )
    return Path(models_dir) / name / version
