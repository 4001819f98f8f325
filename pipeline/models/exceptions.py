"""Errors of model directories, manifests and sessions."""

from __future__ import annotations

from pipeline.errors import InferstreamError


class ModelError(InferstreamError):
    """Base class: a model cannot be found, trusted or run."""


class ManifestError(ModelError):
    """manifest.json is missing, unreadable or lacks a field."""


class ModelNotFoundError(ModelError):
    """No directory for the requested model name or version (a bad flag or setting: exit 2)."""

    exit_code = 2


class ModelIntegrityError(ModelError):
    """A model file's sha256 differs from its manifest: the file was changed or corrupted."""


class ExecutionProviderError(ModelError):
    """An execution provider was asked for that is unknown or not in this onnxruntime build."""


class RuntimeNotInstalledError(ModelError, ImportError):
    """onnxruntime is not installed."""


CIRCUIT_REASON = "circuit-open"


class ModelFailed(ModelError):
    """Every attempt of a model call failed (pipeline/scoring/model_calls.py); `reason` is
    model-timeout, model-error or circuit-open (a dead letter's reason), `detail` one line
    (model version, what the last attempt raised), `version` the model version."""

    def __init__(self, reason: str, detail: str, version: str = "") -> None:
        super().__init__(detail)
        self.reason, self.detail, self.version = reason, detail, version


class CircuitOpen(ModelFailed):
    """The version's breaker is open: the call was not made."""

    def __init__(self, detail: str, version: str = "") -> None:
        super().__init__(CIRCUIT_REASON, detail, version)
