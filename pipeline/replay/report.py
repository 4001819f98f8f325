"""Compare a replay with what was served: counts, input fidelity, output agreement.

Generic over streams: every result field beyond the common ones is the output head's; numeric
ones are compared by absolute delta against a tolerance (ONNX Runtime is not bit-identical
across providers and thread counts), string ones as equal or flipped (served -> replayed).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.replay.rescore import Replayed

COMMON_RESULT_FIELDS = frozenset({
    "request_id", "key", "tenant", "model_name", "model_version", "served_at", "latency_ms",
    "degraded",
})  # fmt: skip
DEFAULT_TOLERANCE = 1e-6
# decades from below 1e-11 up to 1, and everything from 1 up
DELTA_EDGES = np.array([0.0, *(10.0**e for e in range(-11, 1)), np.inf])
COUNTS = (
    "in_range", "replayed", "matched", "unmatched_replay_only", "unmatched_served_only",
    "dead_lettered_on_replay", "dead_lettered_when_served", "data_hash_equal",
)  # fmt: skip


@dataclass
class Pair:
    source: tuple[int, int]
    replayed: Replayed
    served_result: dict[str, Any] | None
    served_provenance: dict[str, Any] | None
    served_dead: str | None


def _delta(served: Any, replayed: Any) -> float:
    """|replayed - served|; for arrays (an embedding) the largest element's, inf if sizes differ."""
    if isinstance(served, list | tuple) or isinstance(replayed, list | tuple):
        a, b = np.asarray(served, dtype=np.float64), np.asarray(replayed, dtype=np.float64)
        return float(np.abs(a - b).max(initial=0.0)) if a.shape == b.shape else math.inf
    return abs(float(replayed) - float(served))


def _label(value: Any) -> str:
    """A string field as compared and counted; a list of labels as "a > b > c"."""
    return " > ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


@dataclass
class FieldAgreement:
    name: str
    numeric: bool
    identical: int = 0
    within: int = 0
    differing: int = 0
    deltas: list[float] = field(default_factory=list)
    flips: Counter = field(default_factory=Counter)
    confusion: Counter = field(default_factory=Counter)  # (served, replayed) -> n
    largest: list[tuple[float, str, Any, Any]] = field(default_factory=list)

    def add(self, request_id: str, served: Any, replayed: Any, tolerance: float) -> None:
        if self.numeric:
            delta = _delta(served, replayed)
            self.deltas.append(delta)
            self.largest.append((delta, request_id, served, replayed))
            if delta == 0:
                self.identical += 1
            elif delta <= tolerance:
                self.within += 1
            else:
                self.differing += 1
        else:
            served, replayed = _label(served), _label(replayed)
            self.confusion[(served, replayed)] += 1
            if served == replayed:
                self.identical += 1
            else:
                self.differing += 1
                self.flips[f"{served} -> {replayed}"] += 1

    def summary(self, top: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "identical": self.identical, "within_tolerance": self.within,
            "differing": self.differing,
        }  # fmt: skip
        if self.numeric and self.deltas:
            deltas = np.asarray(self.deltas)
            q = np.quantile(deltas, [0.5, 0.9, 0.99, 1.0])
            out["abs_delta"] = dict(zip(("p50", "p90", "p99", "max"), map(float, q), strict=True))
            # |delta| per decade, 0 on its own: what the HTML page plots
            exact = int((deltas == 0).sum())
            counts, _ = np.histogram(deltas[deltas > 0], bins=DELTA_EDGES)
            out["delta_histogram"] = {
                "labels": ["0", *(f"<1e{e}" for e in range(-11, 1)), ">=1"],
                "counts": [exact, *counts.tolist()],
            }
            biggest = sorted(self.largest, key=lambda item: -item[0])[:top]
            out["largest"] = [
                {"request_id": rid, "served": s, "replayed": r, "abs_delta": d}
                for d, rid, s, r in biggest
                if d > 0
            ]
        if self.flips:
            out["flips"] = dict(self.flips.most_common())
        if self.confusion:
            out["confusion"] = [
                {"served": a, "replayed": b, "count": n}
                for (a, b), n in sorted(self.confusion.items())
            ]
        return out


def build_report(
    stream: str,
    pairs: Iterable[Pair],
    head_fields: dict[str, bool],  # name -> numeric
    coverage: list[dict[str, Any]],
    tolerance: float = DEFAULT_TOLERANCE,
    top: int = 10,
    seconds: float = 0.0,
) -> dict[str, Any]:
    counts = Counter()
    fidelity_mismatch: list[dict[str, Any]] = []
    agreement = {name: FieldAgreement(name, numeric) for name, numeric in head_fields.items()}
    served_versions: Counter = Counter()
    replay_versions: Counter = Counter()
    for pair in pairs:
        counts["in_range"] += 1
        replayed = pair.replayed
        if replayed.dead_reason:
            counts["dead_lettered_on_replay"] += 1
        if pair.served_dead:
            counts["dead_lettered_when_served"] += 1
        if replayed.result is not None:
            counts["replayed"] += 1
            replay_versions[replayed.result["model_version"]] += 1
        if pair.served_result is not None:
            served_versions[pair.served_result["model_version"]] += 1
        if replayed.result is None or pair.served_result is None:
            if replayed.result is not None:
                counts["unmatched_replay_only"] += 1
            elif pair.served_result is not None:
                counts["unmatched_served_only"] += 1
            continue
        counts["matched"] += 1
        served_hash = (pair.served_provenance or {}).get("data_hash")
        replay_hash = (replayed.provenance or {}).get("data_hash")
        if served_hash == replay_hash:
            counts["data_hash_equal"] += 1
        else:
            fidelity_mismatch.append({
                "request_id": replayed.request_id,
                "served_preprocessing": (pair.served_provenance or {}).get("preprocessing_version"),
                "replayed_preprocessing": (replayed.provenance or {}).get("preprocessing_version"),
                "source": list(pair.source),
            })  # fmt: skip
        for name, field_agreement in agreement.items():
            field_agreement.add(
                str(replayed.request_id), pair.served_result.get(name),
                replayed.result.get(name), tolerance,
            )  # fmt: skip
    matched = counts["matched"]
    numeric = [a for a in agreement.values() if a.numeric]
    all_within = all(a.differing == 0 for a in agreement.values())
    return {
        "stream": stream,
        "coverage": coverage,
        "counts": {k: counts.get(k, 0) for k in COUNTS},
        "model_versions": {"served": dict(served_versions), "replayed": dict(replay_versions)},
        "tolerance": tolerance,
        "fidelity": {
            "data_hash_equal_share": counts["data_hash_equal"] / matched if matched else math.nan,
            "mismatches": fidelity_mismatch[:top],
            "mismatch_count": len(fidelity_mismatch),
        },
        "agreement": {name: a.summary(top) for name, a in agreement.items()},
        "agree": bool(matched) and all_within and not fidelity_mismatch,
        "numeric_fields": [a.name for a in numeric],
        "seconds": seconds,
        "replayed_per_s": counts["in_range"] / seconds if seconds > 0 else math.nan,
    }
