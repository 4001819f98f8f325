"""Model directories, manifests and the ONNX Runtime session wrapper.

onnxruntime is imported only by `load_model`, so this package imports without it.
"""

from pipeline.models.manifest import (
    ManifestError,
    ModelError,
    ModelManifest,
    ModelNotFoundError,
    ReferenceSample,
    Thresholds,
    available_versions,
    resolve_model_dir,
)
from pipeline.models.runtime import (
    ExecutionProviderError,
    LoadedModel,
    ModelIntegrityError,
    RuntimeNotInstalledError,
    load_model,
)

__all__ = [
    "ExecutionProviderError",
    "LoadedModel",
    "ManifestError",
    "ModelError",
    "ModelIntegrityError",
    "ModelManifest",
    "ModelNotFoundError",
    "ReferenceSample",
    "RuntimeNotInstalledError",
    "Thresholds",
    "available_versions",
    "load_model",
    "resolve_model_dir",
]
