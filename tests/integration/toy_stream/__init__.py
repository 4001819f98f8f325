"""A toy second stream, entirely in the test tree: sensor readings -> "high" / "low".

It is registered with the `inferstream.streams` entry point by the test that uses it (a
dist-info directory on PYTHONPATH), exactly as a user's own package would register a stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.plugin import DriftInjection, StreamPlugin
from pipeline.models.manifest import ModelManifest

PREPROCESSING_VERSION = "toy-features/1"
FEATURE_NAMES = ("reading_scaled", "reading_tanh")
MAX_READING = 1000.0
LABELS = np.array(["low", "high"], dtype=object)


@dataclass(frozen=True)
class ToyInputs:
    matrix: np.ndarray
    valid_index: np.ndarray
    errors: list[tuple[int, str]]


def features(readings: np.ndarray) -> np.ndarray:
    scaled = readings / 100.0
    return np.column_stack([scaled, np.tanh(scaled)]).astype(np.float32)


def preprocess(records: Sequence[Mapping[str, Any]]) -> ToyInputs:
    errors, keep, readings = [], [], []
    for i, record in enumerate(records):
        value = record.get("reading")
        if not isinstance(value, float | int) or not abs(value) <= MAX_READING:
            limit = f"[-{MAX_READING:g}, {MAX_READING:g}]"
            errors.append((i, f"reading {value!r} out of range {limit}"))
            continue
        keep.append(i)
        readings.append(float(value))
    matrix = features(np.asarray(readings, dtype=np.float64)) if readings else np.empty(
        (0, len(FEATURE_NAMES)), np.float32
    )
    return ToyInputs(matrix, np.asarray(keep, dtype=np.intp), errors)


def head(manifest: ModelManifest) -> Any:
    threshold = float(manifest.thresholds.get("high", 0.5))

    def fields(outputs: np.ndarray) -> dict[str, Any]:
        probability = np.ascontiguousarray(outputs[:, 1])
        return {"label": LABELS[(probability >= threshold).astype(np.intp)].tolist(),
                "probability": probability}

    return fields


class Readings:
    def __init__(self, seed: int, drift: DriftInjection | None) -> None:
        self.rng = np.random.default_rng(seed)
        self.drift = drift
        self.made = 0

    def generate(self, n: int) -> list[dict[str, Any]]:
        values = self.rng.normal(0.0, 100.0, n)
        if self.drift is not None:
            after = self.made + np.arange(n) >= self.drift.after
            values[after] = values[after] * self.drift.scale + 100.0 * self.drift.shift
        self.made += n
        return [
            {"request_id": f"toy-{self.made - n + i}-{self.rng.integers(1 << 62)}",
             "sensor_id": f"sensor-{i % 7}", "tenant": "lab", "reading": float(v)}
            for i, v in enumerate(np.clip(values, -MAX_READING, MAX_READING))
        ]


def generator(seed: int, drift: DriftInjection | None, options: Mapping[str, float]) -> Readings:
    return Readings(seed, drift)


PLUGIN = StreamPlugin(
    name="toy",
    request_schema="toy_request",
    result_schema="toy_result",
    key_field="sensor_id",
    model_name="toy",
    preprocessing_version=PREPROCESSING_VERSION,
    preprocess=preprocess,
    head=head,
    driftable_fields=("reading",),
    generator=generator,
    schema_dir=Path(__file__).resolve().parent / "schemas",
)
