"""The cascade's escalation band, calibrated on held-out data for a decision-agreement target.

Held-out data: the large model's own labelled held-out rows, from the stream plug-in's
`heldout` hook (a stream with a synthetic generator can regenerate the last rows of the
model's training stream from its manifest). Their first half calibrates, the second half
evaluates, so the reported agreement is not the one the band was fitted on.

A row served by the small model gets the small model's decision (its own thresholds); an
escalated row the large model's. Sorting the calibration rows by small score, the band is the
narrowest score range [lo, hi] whose rows hold enough of the small-vs-large disagreements that
at most (1 - target) of all rows still disagree: the fewest escalations that meet the target
(found for every start in O(n log n) with prefix sums).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.tiers.exceptions import CalibrationError
from pipeline.tiers.policy import escalated_mask


def levels(scores: np.ndarray, thresholds: Mapping[str, Any]) -> np.ndarray:
    """0 approve, 1 review, 2 decline (the decision head's thresholds)."""
    review, decline = float(thresholds["review"]), float(thresholds["decline"])
    return (scores >= review).astype(np.int8) + (scores >= decline)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    labels = np.asarray(labels).astype(bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if not pos or not neg:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (the step-wise area under precision-recall, as scikit-learn's)."""
    labels = np.asarray(labels).astype(bool)
    if not labels.any():
        return math.nan
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    s, y = np.asarray(scores)[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = (distinct + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / labels.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Band:
    lo: float
    hi: float
    deferral: float  # share of the calibration rows escalated
    agreement: float  # share of calibration rows whose cascade decision is large-only's


def fit_band(
    small: np.ndarray,
    large: np.ndarray,
    small_thresholds: Mapping[str, Any],
    large_thresholds: Mapping[str, Any],
    target: float,
) -> Band:
    """The narrowest band of small scores that reaches `target` decision agreement."""
    if not 0.0 < target <= 1.0:
        raise CalibrationError(f"target agreement {target!r} must be in (0, 1]")
    n = len(small)
    if n == 0:
        raise CalibrationError("no held-out rows to calibrate on")
    disagree = levels(small, small_thresholds) != levels(large, large_thresholds)
    order = np.argsort(small, kind="mergesort")
    s = small[order]
    prefix = np.r_[0, np.cumsum(disagree[order])]
    allowed = math.floor((1.0 - target) * n + 1e-9)
    need = int(prefix[-1]) - allowed
    if need <= 0:  # the small model alone meets the target: escalate (almost) nothing
        return Band(1.0, 1.0, float((small >= 1.0).mean()), 1.0 - prefix[-1] / n)
    starts = np.arange(n + 1)
    ends = np.searchsorted(prefix, prefix[starts] + need, side="left")
    ok = ends <= n
    if not ok.any():
        raise CalibrationError(f"agreement {target} is not reachable")
    widths = np.where(ok, ends - starts, n + 1)
    a = int(np.argmin(widths))
    b = int(ends[a])
    lo, hi = float(s[a]), float(s[b - 1])
    mask = escalated_mask(small, [(lo, hi)])
    served = np.where(mask, large, small)
    agree = np.where(
        mask, True, levels(served, small_thresholds) == levels(large, large_thresholds)
    )
    return Band(lo, hi, float(mask.mean()), float(agree.mean()))


def widen_for_auc(
    small: np.ndarray,
    large: np.ndarray,
    labels: np.ndarray,
    small_thresholds: Mapping[str, Any],
    large_thresholds: Mapping[str, Any],
    band: Band,
    target: float,
    max_auc_drop: float,
    steps: int = 60,
) -> Band:
    """The narrowest widening of `band` (lower `lo`, higher `hi`, on a grid of small-score
    quantiles) whose cascade keeps ROC AUC within `max_auc_drop` of large-only and agreement at
    least `target`. The ranking below the band is the small model's, so a small model with a
    lower AUC needs more of its low scores escalated than agreement alone asks for."""
    auc_large = roc_auc(labels, large)
    large_levels = levels(large, large_thresholds)
    small_levels = levels(small, small_thresholds)

    def check(lo: float, hi: float) -> tuple[bool, float, float]:
        up = (small >= lo) & (small <= hi)
        agreement = float(np.where(up, True, small_levels == large_levels).mean())
        auc = roc_auc(labels, np.where(up, large, small))
        return agreement >= target and auc_large - auc <= max_auc_drop, float(up.mean()), agreement

    ok, deferral, agreement = check(band.lo, band.hi)
    if ok:
        return Band(band.lo, band.hi, deferral, agreement)
    below = small[small < band.lo]
    above = small[small > band.hi]
    los = (
        np.unique(np.r_[np.quantile(below, np.linspace(0, 1, steps)), band.lo])
        if len(below)
        else np.array([band.lo])
    )
    his = (
        np.unique(np.r_[np.quantile(above, np.linspace(0, 1, steps // 4)), band.hi])
        if len(above)
        else np.array([band.hi])
    )
    best: Band | None = None
    for hi in his:
        # the lowest lo first is widest: scan from the band outwards, stop at the first that
        # passes (wider ones only cost more)
        for lo in los[::-1]:
            ok, deferral, agreement = check(float(lo), float(hi))
            if ok:
                if best is None or deferral < best.deferral:
                    best = Band(float(lo), float(hi), deferral, agreement)
                break
    if best is None:
        raise CalibrationError(
            f"no band keeps ROC AUC within {max_auc_drop} of the large model's "
            f"({auc_large:.4f}); the small model ranks too differently"
        )
    return best


def evaluate(
    small: np.ndarray,
    large: np.ndarray,
    labels: np.ndarray,
    small_thresholds: Mapping[str, Any],
    large_thresholds: Mapping[str, Any],
    bands: list[tuple[float, float]],
    small_units: float,
    large_units: float,
) -> dict[str, Any]:
    """The cascade against large-only on these rows: agreement, deferral, AUCs, cost."""
    up = escalated_mask(small, bands)
    cascade_scores = np.where(up, large, small)
    cascade_levels = np.where(up, levels(large, large_thresholds), levels(small, small_thresholds))
    large_levels = levels(large, large_thresholds)
    auc_large, auc_cascade = roc_auc(labels, large), roc_auc(labels, cascade_scores)
    cost_cascade = small_units + float(up.mean()) * large_units
    return {
        "rows": len(small),
        "agreement": round(float((cascade_levels == large_levels).mean()), 6),
        "deferral": round(float(up.mean()), 6),
        "roc_auc_large": round(auc_large, 6),
        "roc_auc_cascade": round(auc_cascade, 6),
        "roc_auc_small": round(roc_auc(labels, small), 6),
        "roc_auc_delta": round(auc_cascade - auc_large, 6),
        "pr_auc_large": round(pr_auc(labels, large), 6),
        "pr_auc_cascade": round(pr_auc(labels, cascade_scores), 6),
        "cost_units_per_event_large": large_units,
        "cost_units_per_event_cascade": round(cost_cascade, 6),
        "cost_ratio": round(cost_cascade / large_units, 4) if large_units else None,
    }


def heldout(manifest: Any, plugin: Any) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of `manifest`'s held-out rows, from the stream plug-in's `heldout`
    hook (pipeline/core/plugin.py): how they are made is the stream's business."""
    if plugin is None or plugin.heldout is None:
        name = getattr(plugin, "name", None)
        raise CalibrationError(f"stream {name!r} gives no labelled held-out data to calibrate on")
    try:
        x, y = plugin.heldout(manifest)
    except ValueError as exc:
        raise CalibrationError(f"stream {plugin.name!r}: {exc}") from None
    if len(x) != len(y):
        raise CalibrationError(
            f"stream {plugin.name!r}: held-out data has {len(x)} rows but {len(y)} labels"
        )
    return np.asarray(x), np.asarray(y).astype(np.int64)


def calibrate(
    small_model: Any,
    large_model: Any,
    target: float = 0.995,
    small_units: float = 0.0,
    large_units: float = 0.0,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    plugin: Any = None,
    max_auc_drop: float | None = 0.005,
    margin: float = 0.2,
) -> dict[str, Any]:
    """Fit the band on the first half of the large model's held-out rows, evaluate on the rest.

    `margin`: the band is fitted for stricter goals than asked (agreement target + margin of
    the allowed disagreement; AUC drop - margin of it), so that they hold on unseen rows too.
    """
    x, y = data if data is not None else heldout(large_model.manifest, plugin)
    half = len(y) // 2
    small_scores = small_model.predict(x)[:, _column(small_model)]
    large_scores = large_model.predict(x)[:, _column(large_model)]
    st, lt = small_model.manifest.thresholds, large_model.manifest.thresholds
    band = fit_band(
        small_scores[:half], large_scores[:half], st, lt, target + margin * (1 - target)
    )
    if max_auc_drop is not None:
        band = widen_for_auc(
            small_scores[:half], large_scores[:half], y[:half], st, lt, band,
            target + margin * (1 - target), max_auc_drop * (1 - margin),
        )  # fmt: skip
    bands = [(round(band.lo, 6), round(band.hi, 6))]
    if bands[0][0] > band.lo:  # rounding must not shrink the band
        bands = [(math.floor(band.lo * 1e6) / 1e6, bands[0][1])]
    if bands[0][1] < band.hi:
        bands = [(bands[0][0], math.ceil(band.hi * 1e6) / 1e6)]
    args = (st, lt, bands, small_units, large_units)
    return {
        "small": small_model.manifest.version,
        "large": large_model.manifest.version,
        "target_agreement": target,
        "max_auc_drop": max_auc_drop,
        "margin": margin,
        "bands": [list(b) for b in bands],
        "calibration": evaluate(small_scores[:half], large_scores[:half], y[:half], *args),
        "evaluation": evaluate(small_scores[half:], large_scores[half:], y[half:], *args),
        "heldout": f"last {len(y)} rows of model {large_model.manifest.version}'s stream: "
        f"first {half} calibrate, last {len(y) - half} evaluate",
    }


def _column(model: Any) -> int:
    column = model.manifest.output.get("positive_column", 1)
    return int(column) if isinstance(column, int) else 1
