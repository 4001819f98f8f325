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
