"""Model directories, manifests and the ONNX Runtime session wrapper.

onnxruntime is imported only by `load_model`, so this package imports without it.
"""

from pipeline.models.exceptions import (
    ExecutionProviderError,
    ManifestError,
    ModelError,
    ModelIntegrityError,
    ModelNotFoundError,
    RuntimeNotInstalledError,
)
from pipeline.models.manifest import (
    ModelManifest,
    ReferenceSample,
    available_versions,
    resolve_model_dir,
)
from pipeline.models.runtime import LoadedModel, load_model

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
    "available_versions",
    "load_model",
    "resolve_model_dir",
]
