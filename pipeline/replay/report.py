"""Compare a replay with what was served: counts, input fidelity, output agreement.

Generic over streams: every result field beyond the common ones is the output head's; numeric
ones are compared by absolute delta against a tolerance (ONNX Runtime is not bit-identical
across providers and thread counts), string ones as equal or flipped (served -> replayed).
"""

from __future__ import annotations

import heapq
import math
import random
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
# deltas kept for quantiles: all of them up to this many, then a uniform reservoir sample, so a
# replay of millions of records holds a fixed amount per field (quantiles exact below it)
RESERVOIR = 100_000
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
    """One head field's agreement, folded record by record in bounded memory."""

    name: str
    numeric: bool
    top: int = 10
    identical: int = 0
    within: int = 0
    differing: int = 0
    seen: int = 0  # numeric deltas folded in
    exact_zero: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(DELTA_EDGES) - 1, int))
    deltas: list[float] = field(default_factory=list)  # all, or a reservoir of RESERVOIR
    flips: Counter = field(default_factory=Counter)
    confusion: Counter = field(default_factory=Counter)  # (served, replayed) -> n
    largest: list[tuple[float, int, str, Any, Any]] = field(default_factory=list)  # a min-heap
    _random: random.Random = field(default_factory=lambda: random.Random(0))

    def add(self, request_id: str, served: Any, replayed: Any, tolerance: float) -> None:
        if self.numeric:
            delta = _delta(served, replayed)
            self._fold(delta, request_id, served, replayed)
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

    def _fold(self, delta: float, request_id: str, served: Any, replayed: Any) -> None:
        self.seen += 1
        if delta == 0:
            self.exact_zero += 1
        else:
            self.histogram[min(np.searchsorted(DELTA_EDGES, delta, "right") - 1,
                               len(self.histogram) - 1)] += 1  # fmt: skip
        if len(self.deltas) < RESERVOIR:
            self.deltas.append(delta)
        else:  # reservoir sampling: each delta kept with probability RESERVOIR / seen
            slot = self._random.randrange(self.seen)
            if slot < RESERVOIR:
                self.deltas[slot] = delta
        if delta > 0:
            item = (delta, self.seen, request_id, served, replayed)
            if len(self.largest) < self.top:
                heapq.heappush(self.largest, item)
            elif delta > self.largest[0][0]:
                heapq.heapreplace(self.largest, item)

    def _largest_delta(self) -> float:
        return max((item[0] for item in self.largest), default=0.0)

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
            out["abs_delta"]["max"] = max(out["abs_delta"]["max"], self._largest_delta())
            out["quantiles_from"] = "all" if self.seen <= RESERVOIR else f"sample of {RESERVOIR}"
            out["delta_histogram"] = {
                "labels": ["0", *(f"<1e{e}" for e in range(-11, 1)), ">=1"],
                "counts": [self.exact_zero, *self.histogram.tolist()],
            }
            biggest = sorted(self.largest, key=lambda item: (-item[0], item[1]))[:top]
            out["largest"] = [
                {"request_id": rid, "served": s, "replayed": r, "abs_delta": d}
                for d, _, rid, s, r in biggest
            ]
        if self.flips:
            out["flips"] = dict(self.flips.most_common())
        if self.confusion:
            out["confusion"] = [
                {"served": a, "replayed": b, "count": n}
                for (a, b), n in sorted(self.confusion.items())
            ]
        return out


class ReportBuilder:
    """The report, folded pair by pair: memory independent of the range's size."""

    def __init__(
        self,
        stream: str,
        head_fields: dict[str, bool],  # name -> numeric
        tolerance: float = DEFAULT_TOLERANCE,
        top: int = 10,
    ) -> None:
        self.stream, self.tolerance, self.top = stream, tolerance, top
        self.counts: Counter = Counter()
        self.mismatches: list[dict[str, Any]] = []  # the first `top`
        self.mismatch_count = 0
        self.agreement = {
            name: FieldAgreement(name, numeric, top) for name, numeric in head_fields.items()
        }
        self.served_versions: Counter = Counter()
        self.replay_versions: Counter = Counter()

    def add(self, pair: Pair) -> None:
        counts = self.counts
        counts["in_range"] += 1
        replayed = pair.replayed
        if replayed.dead_reason:
            counts["dead_lettered_on_replay"] += 1
        if pair.served_dead:
            counts["dead_lettered_when_served"] += 1
        if replayed.result is not None:
            counts["replayed"] += 1
            self.replay_versions[replayed.result["model_version"]] += 1
        if pair.served_result is not None:
            self.served_versions[pair.served_result["model_version"]] += 1
        if replayed.result is None or pair.served_result is None:
            if replayed.result is not None:
                counts["unmatched_replay_only"] += 1
            elif pair.served_result is not None:
                counts["unmatched_served_only"] += 1
            return
        counts["matched"] += 1
        served_hash = (pair.served_provenance or {}).get("data_hash")
        replay_hash = (replayed.provenance or {}).get("data_hash")
        if served_hash == replay_hash:
            counts["data_hash_equal"] += 1
        else:
            self.mismatch_count += 1
            if len(self.mismatches) < self.top:
                self.mismatches.append({
                    "request_id": replayed.request_id,
                    "served_preprocessing":
                        (pair.served_provenance or {}).get("preprocessing_version"),
                    "replayed_preprocessing":
                        (replayed.provenance or {}).get("preprocessing_version"),
                    "source": list(pair.source),
                })  # fmt: skip
        for name, field_agreement in self.agreement.items():
            field_agreement.add(
                str(replayed.request_id), pair.served_result.get(name),
                replayed.result.get(name), self.tolerance,
            )  # fmt: skip

    def build(self, coverage: list[dict[str, Any]], seconds: float = 0.0) -> dict[str, Any]:
        counts = self.counts
        matched = counts["matched"]
        agreement = self.agreement
        numeric = [a for a in agreement.values() if a.numeric]
        all_within = all(a.differing == 0 for a in agreement.values())
        return {
            "stream": self.stream,
            "coverage": coverage,
            "counts": {k: counts.get(k, 0) for k in COUNTS},
            "model_versions": {
                "served": dict(self.served_versions), "replayed": dict(self.replay_versions),
            },
            "tolerance": self.tolerance,
            "fidelity": {
                "data_hash_equal_share": counts["data_hash_equal"] / matched
                if matched else math.nan,
                "mismatches": self.mismatches,
                "mismatch_count": self.mismatch_count,
            },
            "agreement": {name: a.summary(self.top) for name, a in agreement.items()},
            "agree": bool(matched) and all_within and not self.mismatch_count,
            "numeric_fields": [a.name for a in numeric],
            "seconds": seconds,
            "replayed_per_s": counts["in_range"] / seconds if seconds > 0 else math.nan,
        }


def build_report(
    stream: str,
    pairs: Iterable[Pair],
    head_fields: dict[str, bool],  # name -> numeric
    coverage: list[dict[str, Any]],
    tolerance: float = DEFAULT_TOLERANCE,
    top: int = 10,
    seconds: float = 0.0,
) -> dict[str, Any]:
    builder = ReportBuilder(stream, head_fields, tolerance, top)
    for pair in pairs:
        builder.add(pair)
    return builder.build(coverage, seconds)
