"""The fixed, versioned reference sample a model's inputs are compared with."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from pipeline.drift.alerts import DriftTest

_VERSION_CHARS = 16


@dataclass(frozen=True, eq=False)
class Reference:
    """A float32 matrix [n_ref, d] with feature names; never rolled forward automatically.

    `categorical` names features whose values are category codes; numeric features with few
    distinct reference values are treated as categorical too (see `tests`). The version is a
    sha256 prefix of the names, the categorical set and the matrix bytes: the same sample always
    has the same version, and any change to it gives a new one.
    """

    values: np.ndarray
    feature_names: tuple[str, ...]
    categorical: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float32, order="C")  # own copy: frozen below
        if values.ndim != 2:
            raise ValueError("reference values must be a 2-D [n_ref, d] matrix")
        names = tuple(str(n) for n in self.feature_names)
        if len(names) != values.shape[1]:
            raise ValueError(f"{values.shape[1]} columns but {len(names)} feature names")
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if values.shape[0] < 2:
            raise ValueError("a reference needs at least 2 rows")
        unknown = set(self.categorical) - set(names)
        if unknown:
            raise ValueError(f"categorical features not in the reference: {sorted(unknown)}")
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "categorical", frozenset(self.categorical))

    @classmethod
    def from_rows(
        cls, values: np.ndarray, feature_names: Sequence[str], categorical: Iterable[str] = ()
    ) -> Reference:
        matrix = np.asarray(values, dtype=np.float32)
        return cls(matrix, tuple(feature_names), frozenset(categorical))

    @property
    def n_ref(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    @cached_property
    def version(self) -> str:
        digest = hashlib.sha256()
        header = {
            "names": list(self.feature_names),
            "categorical": sorted(self.categorical),
            "shape": list(self.values.shape),
            "dtype": "float32",
        }
        digest.update(json.dumps(header, sort_keys=True).encode())
        digest.update(self.values.tobytes())
        return digest.hexdigest()[:_VERSION_CHARS]

    def tests(self, max_distinct: int = 5) -> tuple[DriftTest, ...]:
        """The test each feature gets: G for categorical or few-valued features, else KS."""
        out = []
        for j, name in enumerate(self.feature_names):
            few = np.unique(self.values[:, j]).size <= max_distinct
            out.append(DriftTest.G if name in self.categorical or few else DriftTest.KS)
        return tuple(out)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = {"feature_names": list(self.feature_names), "categorical": sorted(self.categorical)}
        encoded = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(buffer, values=self.values, meta=encoded)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Reference:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            return cls(data["values"], tuple(meta["feature_names"]), frozenset(meta["categorical"]))

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> Reference:
        return cls.from_bytes(Path(path).read_bytes())
