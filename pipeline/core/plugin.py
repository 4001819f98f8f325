"""The stream plug-in contract: everything the pipeline knows about one stream.

A stream (card transactions, documents, yours) is one `StreamPlugin` value: its request and result
schemas, the key that orders it, the versioned preprocessing that turns request dicts into one
model input matrix, the canonical bytes its `data_hash` covers, the output head that turns
model outputs into result fields, its drift exemptions and a synthetic generator for `produce`
and `demo`. The engine, scorer, drift monitor and CLI take everything stream-specific from it;
`pipeline/core/registry.py` finds plug-ins by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.core.canonical import float32_rows
from pipeline.core.exceptions import PluginError
from pipeline.core.topics import StreamTopics
from pipeline.models.manifest import ModelManifest

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class ModelInputs(Protocol):
    """What preprocessing returns for a batch of request dicts.

    Dense streams give one matrix row per valid request. Token streams (documents) may
    give several rows per request (chunks of a long text) and say so with the optional
    attributes below, read with `getattr(inputs, name, None)`:

    * `row_request` (int array, one per row): which valid request (index into `valid_index`)
      a row belongs to; the scorer pools a request's output rows, weighted by `lengths`;
    * `lengths` (int array, one per row): the row's real tokens. With it the scorer batches
      rows by length under a token budget, each model call padded only to its longest row;
    * `canonical` (bytes per valid request): what `data_hash` covers, when rows are not one per
      request (otherwise the plug-in's `canonical_inputs(matrix)`);
    * `fields` (name -> one value per valid request): result fields preprocessing knows
      (token counts, truncation, ids copied from the request).
    """

    matrix: np.ndarray  # model input rows of the valid requests
    valid_index: np.ndarray  # position (in the batch given) of each valid request
    errors: list[tuple[int, str]]  # (position, reason naming the field) of each one left out


Preprocess = Callable[[Sequence[Mapping[str, Any]]], ModelInputs]
# Preprocessing that needs the model's files (a tokenizer): built once per loaded model.
BindPreprocess = Callable[[ModelManifest, Path], Preprocess]
CanonicalInputs = Callable[[np.ndarray], list[bytes]]
# Result fields per row from the model's output rows (float64 [n, width]): name -> column.
OutputHead = Callable[[np.ndarray], Mapping[str, Sequence[Any] | np.ndarray]]


@dataclass(frozen=True)
class DriftInjection:
    """Synthetic drift: one request field, after `after` requests, mean + `shift` sd, x `scale`."""

    after: int
    feature: str
    shift: float = 0.0
    scale: float = 1.0


class RequestGenerator(Protocol):
    def generate(self, n: int) -> list[dict[str, Any]]:
        """The next `n` synthetic request dicts (fields of the request schema)."""
        ...


@dataclass(frozen=True)
class GeneratorOption:
    """A numeric knob of a stream's generator, offered as `produce --<name>` / `demo --<name>`."""

    name: str  # flag name without dashes, e.g. "error-share"
    help: str
    default: float
    low: float
    high: float

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def check(self, value: float) -> float:
        if not self.low <= value <= self.high:
            raise ValueError(
                f"--{self.name} must be in [{self.low:g}, {self.high:g}] (got {value:g})"
            )
        return value


GeneratorFactory = Callable[[int, DriftInjection | None, Mapping[str, float]], RequestGenerator]
# a model version's labelled held-out rows: (model input matrix, 0/1 labels), in stream order;
# ValueError naming what is missing (e.g. the manifest does not say how it was trained)
HeldOut = Callable[[ModelManifest], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, kw_only=True)
class StreamPlugin:
    name: str
    request_schema: str  # schema name (`<name>.v<N>.avsc`)
    result_schema: str  # its fields beyond the common ones are the head's
    key_field: str  # request field that is the Kafka key: order is kept per key
    model_name: str  # model directory under INFERSTREAM_MODELS_DIR
    preprocessing_version: str  # must equal the model manifest's
    head: Callable[[ModelManifest], OutputHead]  # checks the manifest's output fields it needs
    preprocess: Preprocess | None = None  # request dicts -> model inputs, or else:
    bind_preprocess: BindPreprocess | None = None  # (manifest, model dir) -> preprocess
    canonical_inputs: CanonicalInputs = float32_rows
    drift_exempt: frozenset[str] = frozenset()  # model input features the drift monitor skips
    driftable_fields: tuple[str, ...] = ()  # request fields the generator can drift
    generator: GeneratorFactory | None = None
    generator_options: tuple[GeneratorOption, ...] = ()
    # labelled held-out data of a model version (what `models calibrate-cascade` fits the
    # cascade band on); None: the stream's tiers cannot be calibrated
    heldout: HeldOut | None = None
    tenant_field: str | None = "tenant"  # request field copied to the result's `tenant`
    # request headers copied onto the outputs (trace context and tenant travel with a request)
    passed_headers: frozenset[str] = frozenset({"traceparent", "tenant"})
    # what counts as flagged in the demo's summary, from a decoded result
    flagged: Callable[[Mapping[str, Any]], bool] | None = None
    schema_dir: Path | None = None  # the plug-in's own .avsc files, when not under schemas/
    # request field naming the job a request belongs to (document jobs): the scorer asks the
    # job admission rule about it (cancelled, over budget) and the job tracker counts by it
    job_field: str | None = None
    # the engine's window cost of one raw request (e.g. estimated tokens); None: every event 1
    message_cost: Callable[[bytes | None], int] | None = None
    about: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise PluginError(
                f"stream name {self.name!r} must be lowercase letters, digits, '-' or '_' "
                "and start with a letter"
            )
        for attr in ("request_schema", "result_schema", "key_field", "model_name"):
            if not getattr(self, attr):
                raise PluginError(f"stream {self.name!r}: {attr} is empty")
        for attr in ("head", "canonical_inputs"):
            if not callable(getattr(self, attr)):
                raise PluginError(f"stream {self.name!r}: {attr} is not callable")
        if (self.preprocess is None) == (self.bind_preprocess is None):
            raise PluginError(
                f"stream {self.name!r}: give exactly one of preprocess, bind_preprocess"
            )
        if not callable(self.preprocess or self.bind_preprocess):
            raise PluginError(f"stream {self.name!r}: preprocess is not callable")

    def preprocessor(self, manifest: ModelManifest, model_dir: Path | None) -> Preprocess:
        """The preprocessing for this model (a tokenizer comes from its directory)."""
        if self.bind_preprocess is not None:
            self.check_model(manifest)
            if model_dir is None:
                raise PluginError(f"stream {self.name!r}: preprocessing needs the model directory")
            return self.bind_preprocess(manifest, Path(model_dir))
        assert self.preprocess is not None
        return self.preprocess

    def topics(self, namespace: str = "") -> StreamTopics:
        return StreamTopics(self.name, namespace)

    def check_model(self, manifest: ModelManifest) -> None:
        """Refuse a model trained on other preprocessing: its inputs would mean other things."""
        if manifest.preprocessing_version != self.preprocessing_version:
            raise PluginError(
                f"model {manifest.name} {manifest.version} was built for preprocessing "
                f"{manifest.preprocessing_version!r}, stream {self.name!r} computes "
                f"{self.preprocessing_version!r}"
            )
