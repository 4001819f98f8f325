"""Load a model directory into a verified, warmed-up ONNX Runtime session and score with it.

Why `predict` runs on its own thread (the scoring handler's infer stage): ONNX Runtime
releases the GIL for the whole of `InferenceSession.run`, and `run` is thread-safe on one
session, so the engine decodes the next batch and delivers the previous one while the model
computes. Nothing calls it on an event loop, which it would stall for the length of a batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.models.exceptions import (
    ExecutionProviderError,
    ModelError,
    ModelIntegrityError,
    RuntimeNotInstalledError,
)
from pipeline.models.manifest import MODEL_FILE, ModelManifest

# Preferred execution providers, best first; the first one this onnxruntime build offers wins.
PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
# ONNX tensor element types of inputs this runtime feeds, and the numpy dtype it feeds them as
_INPUT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeNotInstalledError(
            f"onnxruntime cannot be imported ({exc}); install inferstream[cpu] for CPU or "
            "inferstream[gpu] for CUDA/TensorRT"
        ) from exc
    return onnxruntime


def choose_providers(requested: Sequence[str] | str | None, available: Sequence[str]) -> list[str]:
    """Providers to ask the session for: `requested` as given (checked), or the preference order.

    `requested` may be a comma-separated string (as INFERSTREAM_EXECUTION_PROVIDERS is).
    """
    if isinstance(requested, str):
        requested = [p.strip() for p in requested.split(",") if p.strip()]
    if not requested:
        chosen = [p for p in PROVIDER_PREFERENCE if p in available]
        return chosen or ["CPUExecutionProvider"]
    known = _all_providers()
    for name in requested:
        if known and name not in known:
            raise ExecutionProviderError(
                f"unknown execution provider {name!r}; known providers: {', '.join(known)}"
            )
        if name not in available:
            raise ExecutionProviderError(
                f"execution provider {name!r} is not available in this onnxruntime build; "
                f"available: {', '.join(available)}"
            )
    return list(requested)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model and its session; `predict` is safe to call from several threads."""

    manifest: ModelManifest
    directory: Path
    sha256: str
    provider: str  # the execution provider the session actually runs on
    providers: tuple[str, ...]  # all providers of the session, in priority order
    reference: np.ndarray  # float32 reference inputs (drift baseline, warm-up rows)
    session: Any  # onnxruntime.InferenceSession
    input_dtype: Any = np.float32  # what the session's input takes (tensor(float) -> float32)
    output_width: int = 1  # columns of the output rows `predict` returns

    @property
    def n_features(self) -> int:
        return len(self.manifest.feature_names)

    def _check_shape(self, inputs: np.ndarray) -> None:
        spec = self.manifest.input
        if spec.kind == "tokens":
            if inputs.ndim != 2 or not 0 < inputs.shape[1] <= spec.max_length:
                raise ValueError(
                    f"model {self.manifest.name} {self.manifest.version} expects token rows "
                    f"[n, 1..{spec.max_length}], got {list(inputs.shape)}"
                )
        elif inputs.ndim != 2 or inputs.shape[1] != self.n_features:
            raise ValueError(
                f"model {self.manifest.name} {self.manifest.version} expects inputs of shape "
                f"[n, {self.n_features}], got {list(inputs.shape)}"
            )

    def predict(self, matrix: np.ndarray, run_options: Any = None) -> np.ndarray:
        """The model's output (`output_name`) as float64 rows [n, width]; one session.run.

        What the columns mean is the stream's output head's business (pipeline/core/plugin.py).
        `run_options` (an onnxruntime.RunOptions) lets another thread end the call
        (`terminate`): the model call's timeout (pipeline/scoring/model_calls.py).
        """
        inputs = np.ascontiguousarray(matrix, dtype=self.input_dtype)
        self._check_shape(inputs)
        if len(inputs) == 0:
            return np.zeros((0, self.output_width), dtype=np.float64)
        manifest = self.manifest
        (output,) = self.session.run(
            [manifest.output_name], {manifest.input_name: inputs}, run_options
        )
        return np.asarray(output, dtype=np.float64).reshape(len(inputs), -1)


def load_model(
    model_dir: Path,
    providers: Sequence[str] | None = None,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    warmup_rows: int = 64,
) -> LoadedModel:
    """Verify `model_dir/model.onnx` against its manifest, open a session and warm it up.

    Threads default to 1 each: throughput comes from micro-batches and more worker processes,
    and one thread per session keeps several workers on one machine from fighting over cores.
    """
    onnxruntime = import_onnxruntime()
    model_dir = Path(model_dir)
    manifest = ModelManifest.load(model_dir)

    # Hash the exact bytes the session is built from, so nothing can change in between.
    model_bytes = _read(model_dir / MODEL_FILE)
    actual = hashlib.sha256(model_bytes).hexdigest()
    if actual != manifest.sha256:
        raise ModelIntegrityError(
            f"{model_dir / MODEL_FILE}: sha256 {actual} does not match manifest sha256 "
            f"{manifest.sha256}; the model file was changed or corrupted"
        )
    reference = _load_reference(model_dir, manifest)

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Idle intra-op threads spin by default: on a small machine they take the cores the engine's
    # decode/deliver threads and the other workers need (measured: 3x slower for the docs model
    # with 2 spinning threads on 2 cores than with 1 thread).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    chosen = choose_providers(providers, onnxruntime.get_available_providers())
    try:
        session = onnxruntime.InferenceSession(model_bytes, sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own exception types, not importable here
        raise ModelError(
            f"cannot open {model_dir / MODEL_FILE} with providers {chosen}: {exc}"
        ) from exc
    _check_io(session, manifest, model_dir)

    session_providers = tuple(session.get_providers())
    loaded = LoadedModel(
        manifest=manifest,
        directory=model_dir,
        sha256=actual,
        provider=session_providers[0],
        providers=session_providers,
        reference=reference,
        session=session,
        input_dtype=_INPUT_DTYPES.get(session.get_inputs()[0].type, np.float32),
        output_width=_output_width(session, manifest.output_name),
    )
    if warmup_rows > 0:
        # The first run allocates buffers and (on GPU) compiles kernels; pay for it at load time,
        # not on the first real batch.
        loaded.predict(_warmup_batch(reference, warmup_rows))
    return loaded


def _all_providers() -> list[str]:
    try:
        return list(import_onnxruntime().get_all_providers())
    except RuntimeNotInstalledError:
        return []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file missing") from None


def _load_reference(model_dir: Path, manifest: ModelManifest) -> np.ndarray:
    path = model_dir / manifest.reference.file
    raw = _read(path)
    actual = hashlib.sha256(raw).hexdigest()
    if actual != manifest.reference.sha256:
        raise ModelIntegrityError(
            f"{path}: sha256 {actual} does not match manifest reference.sha256 "
            f"{manifest.reference.sha256}"
        )
    reference = np.load(path, allow_pickle=False)
    if manifest.input.kind == "tokens":  # token-id rows: warm-up inputs, no feature columns
        if reference.ndim != 2 or reference.dtype.kind not in "iu":
            raise ModelError(f"{path}: expected int token-id rows, got {reference.dtype} "
                             f"{list(reference.shape)}")
        return np.ascontiguousarray(reference[:, : manifest.input.max_length], dtype=np.int64)
    if reference.ndim != 2 or reference.shape[1] != len(manifest.feature_names):
        raise ModelError(
            f"{path}: reference shape {list(reference.shape)} does not fit "
            f"{len(manifest.feature_names)} features"
        )
    return np.ascontiguousarray(reference, dtype=np.float32)


def _check_io(session: Any, manifest: ModelManifest, model_dir: Path) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if manifest.input_name not in inputs:
        raise ModelError(
            f"{model_dir}: manifest input {manifest.input_name!r} is not among the model's "
            f"inputs {list(inputs)}"
        )
    if manifest.output_name not in outputs:
        raise ModelError(
            f"{model_dir}: manifest output {manifest.output_name!r} is not among the model's "
            f"outputs {outputs}"
        )
    width = inputs[manifest.input_name].shape[-1]
    dense = manifest.input.kind == "dense"
    if dense and isinstance(width, int) and width != len(manifest.feature_names):
        raise ModelError(
            f"{model_dir}: model takes {width} features, manifest lists "
            f"{len(manifest.feature_names)}"
        )


def _output_width(session: Any, name: str) -> int:
    for output in session.get_outputs():
        if output.name == name:
            width = 1
            for dim in output.shape[1:]:
                width *= dim if isinstance(dim, int) else 1
            return width
    return 1


def _warmup_batch(reference: np.ndarray, rows: int) -> np.ndarray:
    if len(reference) == 0:
        return np.zeros((rows, max(1, reference.shape[1])), dtype=reference.dtype)
    repeats = -(-rows // len(reference))
    return np.ascontiguousarray(np.tile(reference, (repeats, 1))[:rows])
