"""Model directories and their manifest.json: what a model is, expects and outputs.

Layout: `<models_dir>/<name>/<semantic version>/{model.onnx, manifest.json, <reference>.npy}`.
Written by the build scripts under models/ (see models/README.md for every field).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pipeline.models.exceptions import ManifestError, ModelIntegrityError, ModelNotFoundError

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


REFERENCE_ORDERS = ("unordered", "arrival")


@dataclass(frozen=True)
class ReferenceSample:
    """Model inputs (float32 .npy) drawn from held-out, drift-free data, for drift detection.

    `order`: "arrival" when the rows are stored in the order the stream produced them (serial
    dependence such as per-card bursts kept: drift calibrates its thresholds by block bootstrap
    of them); "unordered" (the default) when nothing can be learnt from their order.
    """

    file: str
    rows: int
    sha256: str
    order: str = "unordered"


InputKind = Literal["dense", "tokens"]


@dataclass(frozen=True)
class ModelInput:
    """What the model's one input takes.

    `dense`: float rows, one column per feature name. `tokens`: int64 token-id rows of any
    width up to `max_length`, padded with `pad_id` (the batch is padded to its longest row).
    """

    kind: InputKind = "dense"
    max_length: int = 0
    pad_id: int = 0


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
    input: ModelInput = field(default_factory=ModelInput)
    # every section as written (a stream's head or tokenizer reads its own, e.g. "head")
    sections: Mapping[str, Any] = field(default_factory=dict)
    directory: Path | None = None  # where it was loaded from (`load`)

    def attached_file(self, section: str, model_dir: Path | None = None) -> Path:
        """`<model dir>/<sections[section].file>`, checked against its sha256."""
        model_dir = model_dir or self.directory
        if model_dir is None:
            raise ManifestError(f"model {self.name} {self.version}: directory unknown")
        entry = self.sections.get(section)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("file"), str):
            raise ManifestError(f"model {self.name} {self.version}: no {section!r} file listed")
        path = Path(model_dir) / entry["file"]
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            raise ManifestError(f"{path}: missing ({section} of model {self.name})") from None
        if actual != str(entry.get("sha256", "")).lower():
            raise ModelIntegrityError(
                f"{path}: sha256 {actual} does not match manifest {section}.sha256"
            )
        return path

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

        model_input = _model_input(data.get("input"), source)
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
                order=_reference_order(data, source),
            ),
            metrics=dict(data.get("metrics") or {}),
            training=dict(data.get("training") or {}),
            expected=dict(data.get("expected") or {}),
            created_by=str(data.get("created_by") or ""),
            input=model_input,
            sections=dict(data),
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
        return replace(cls.from_dict(data, source=str(path)), directory=Path(model_dir))


def _reference_order(data: Mapping[str, Any], source: str) -> str:
    order = data["reference"].get("order", "unordered")
    if order not in REFERENCE_ORDERS:
        raise ManifestError(
            f"{source}: field 'reference.order' is {order!r}, expected one of "
            + ", ".join(REFERENCE_ORDERS)
        )
    return str(order)


def _model_input(raw: Any, source: str) -> ModelInput:
    if raw is None:
        return ModelInput()
    if not isinstance(raw, Mapping) or raw.get("kind") not in ("dense", "tokens"):
        raise ManifestError(f"{source}: field 'input' must be an object with kind dense or tokens")
    max_length, pad_id = raw.get("max_length", 0), raw.get("pad_id", 0)
    if not isinstance(max_length, int) or not isinstance(pad_id, int):
        raise ManifestError(f"{source}: input.max_length and input.pad_id must be integers")
    if raw["kind"] == "tokens" and max_length < 2:
        raise ManifestError(f"{source}: a tokens input needs max_length >= 2")
    return ModelInput(raw["kind"], max_length, pad_id)


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
