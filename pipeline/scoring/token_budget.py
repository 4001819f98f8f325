"""Token-budget batching: which rows of a window go into each model call.

A transformer's cost is the padded tokens of a call (rows x longest row), so rows are sorted by
length and grouped greedily while `rows x longest <= max_tokens`; each call is padded to its own
longest row, never to a fixed length. A row longer than the budget goes alone, so one long
document never holds the rest back (the stall TEI #723 describes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def token_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Row indices of each model call, shortest rows first."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    order = np.argsort(lengths, kind="stable")
    ordered = np.asarray(lengths)[order]
    groups: list[np.ndarray] = []
    start, n = 0, len(order)
    while start < n:
        end = start + 1
        # ascending lengths: the longest of [start, end] is ordered[end]
        while end < n and (end + 1 - start) * int(ordered[end]) <= max_tokens:
            end += 1
        groups.append(order[start:end])
        start = end
    return groups


def run_by_length(
    predict: Predict, matrix: np.ndarray, lengths: np.ndarray, max_tokens: int
) -> tuple[np.ndarray, int]:
    """Output rows of every row of `matrix` (padded token ids), and the model calls made."""
    outputs: np.ndarray | None = None
    groups = token_batches(lengths, max_tokens)
    for group in groups:
        width = max(1, int(lengths[group].max()))
        part = predict(matrix[group, :width])
        if outputs is None:
            outputs = np.empty((len(matrix), part.shape[1]), dtype=np.float64)
        outputs[group] = part
    assert outputs is not None or not groups
    return (outputs if outputs is not None else np.empty((0, 0))), len(groups)


def pool_rows(
    rows: np.ndarray, owner: np.ndarray, weights: np.ndarray, n_owners: int
) -> np.ndarray:
    """Weighted mean of each owner's rows (chunks of one document -> one row)."""
    pooled = np.zeros((n_owners, rows.shape[1]), dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    np.add.at(pooled, owner, rows * w[:, None])
    total = np.zeros(n_owners, dtype=np.float64)
    np.add.at(total, owner, w)
    return pooled / np.maximum(total, 1e-12)[:, None]
