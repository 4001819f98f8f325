"""The docs bench's in-process measurements: the bare loop, and batching strategies compared.

No Kafka here. The bare loop is what the docs pipeline cannot avoid doing: tokenize each engine
window (DocumentTokenizer), run the model on its token-budget batches (run_by_length), pool each
document's chunks and apply the head. The batching comparison runs the model on the same token
rows batched three ways and times only the model calls (the tokenization is the same for all).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.scoring.token_budget import pool_rows, run_by_length

Log = Callable[[str], None]
Predict = Callable[[np.ndarray], np.ndarray]


def engine_windows(
    values: list[bytes], cost: Callable[[bytes | None], int], max_cost: int, batch_max: int
) -> list[slice]:
    """The windows the engine would cut from a backlog of these encoded requests: at most
    `batch_max` events whose summed cost stays within `max_cost`, at least one
    (pipeline/engine/consumer_loop.py `_within_cost`)."""
    windows: list[slice] = []
    start, n = 0, len(values)
    while start < n:
        total, end = 0, start
        while end < n and end - start < batch_max:
            total += cost(values[end])
            if total > max_cost and end > start:
                break
            end += 1
        windows.append(slice(start, end))
        start = end
    return windows


def steady_rate(done_at: list[float], sizes: list[int]) -> tuple[float | None, int, float]:
    """(docs/s, docs counted, span s) after the first window: the first window's docs are not
    counted and the span starts when it was done, like the pipeline's first result."""
    if len(done_at) < 2:
        return None, 0, 0.0
    span = done_at[-1] - done_at[0]
    counted = sum(sizes[1:])
    return (round(counted / span, 2) if span > 0 else None), counted, round(span, 3)


def bare_loop(
    records: list[dict[str, Any]],
    windows: list[slice],
    preprocess: Callable[[list[dict[str, Any]]], Any],
    predict: Predict,
    head: Callable[[np.ndarray], Any],
    max_tokens: int,
    log: Log,
) -> dict[str, Any]:
    """Tokenize + model (run_by_length) + pool + head per window, timed window by window."""
    warm = preprocess(records[windows[0]][:8])  # the first call of each is not ours to time
    run_by_length(predict, warm.matrix, warm.lengths, max_tokens)
    started, cpu0 = time.perf_counter(), time.process_time()
    done_at: list[float] = []
    sizes: list[int] = []
    calls = rows = 0
    for w in windows:
        batch = records[w]
        inputs = preprocess(batch)
        outputs, n_calls = run_by_length(predict, inputs.matrix, inputs.lengths, max_tokens)
        pooled = pool_rows(outputs, inputs.row_request, inputs.lengths, len(inputs.valid_index))
        head(pooled)
        calls, rows = calls + n_calls, rows + len(inputs.matrix)
        done_at.append(time.perf_counter())
        sizes.append(len(batch))
        if len(done_at) % 10 == 0:
            log(f"[docs-bench]   bare loop: {sum(sizes)}/{len(records)} docs")
    wall, cpu = done_at[-1] - started, time.process_time() - cpu0
    rate, counted, span = steady_rate(done_at, sizes)
    return {
        "docs": len(records),
        "windows": len(windows),
        "rows": rows,
        "model_calls": calls,
        # all windows, timed after a warm-up call: the loop's steady rate (a few windows only
        # in a small run, so not "after the first window" as the pipeline's is)
        "docs_per_s": round(len(records) / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 3),
        # this process's CPU, all threads (the tokenizer's and ONNX Runtime's)
        "cpu_s_per_1k": round(cpu / len(records) * 1000, 3),
        # the pipeline's definition: the first window's docs not counted, timed from its end
        "after_first_docs_per_s": rate,
        "after_first_counted": counted,
        "after_first_span_s": span,
    }


def fifo_batches(n_rows: int, rows: int) -> list[np.ndarray]:
    """Consecutive groups of `rows` row indices, in arrival order."""
    return [np.arange(i, min(i + rows, n_rows)) for i in range(0, n_rows, rows)]


def timed_calls(
    predict: Predict,
    matrix: np.ndarray,
    lengths: np.ndarray,
    groups: list[np.ndarray],
    fixed_width: int | None,
) -> tuple[np.ndarray, float, int]:
    """Run `groups` of rows, each padded to its longest row (or to `fixed_width`): outputs in
    row order, model seconds and padded tokens."""
    outputs: np.ndarray | None = None
    model_s, padded = 0.0, 0
    for group in groups:
        width = fixed_width or max(1, int(lengths[group].max()))
        part_in = matrix[group, :width]  # `matrix` is at least `fixed_width` wide
        started = time.perf_counter()
        part = predict(np.ascontiguousarray(part_in))
        model_s += time.perf_counter() - started
        padded += part_in.size
        if outputs is None:
            outputs = np.empty((len(matrix), part.shape[1]), dtype=np.float64)
        outputs[group] = part
    assert outputs is not None
    return outputs, model_s, padded


def compare_batching(
    inputs: Any,
    n_docs: int,
    predict: Predict,
    token_batches: Callable[[np.ndarray, int], list[np.ndarray]],
    max_tokens: int,
    fifo_rows: int,
    fixed_width: int | None,
    pad_id: int,
    log: Log,
) -> dict[str, Any]:
    """Model-only docs/s of the same token rows: by length under `max_tokens`, FIFO groups of
    `fifo_rows` padded to their longest row, and (with `fixed_width`) FIFO padded to it."""
    matrix, lengths = inputs.matrix, inputs.lengths
    if fixed_width is not None and matrix.shape[1] < fixed_width:
        wide = np.full((len(matrix), fixed_width), pad_id, dtype=matrix.dtype)
        wide[:, : matrix.shape[1]] = matrix
        matrix = wide
    warm = matrix[:4, : max(1, int(lengths[:4].max()))]
    predict(np.ascontiguousarray(warm))
    strategies: dict[str, tuple[list[np.ndarray], int | None]] = {
        "by_length": (token_batches(lengths, max_tokens), None),
        f"fifo_{fifo_rows}": (fifo_batches(len(matrix), fifo_rows), None),
    }
    if fixed_width is not None:
        strategies[f"fifo_{fifo_rows}_fixed_{fixed_width}"] = (
            fifo_batches(len(matrix), fifo_rows),
            fixed_width,
        )
    out: dict[str, Any] = {}
    reference: np.ndarray | None = None
    for name, (groups, width) in strategies.items():
        log(f"[docs-bench]   batching {name}: {len(groups)} model calls")
        rows, model_s, padded = timed_calls(predict, matrix, lengths, groups, width)
        pooled = pool_rows(rows, inputs.row_request, lengths, n_docs)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        if reference is None:
            reference = pooled
        out[name] = {
            "model_calls": len(groups),
            "padded_tokens": int(padded),
            "real_tokens": int(lengths.sum()),
            "padding_share": round(1 - float(lengths.sum()) / padded, 4) if padded else None,
            "model_s": round(model_s, 3),
            "docs_per_s": round(n_docs / model_s, 2) if model_s > 0 else None,
            # padding must not change the embeddings: the model masks the pad id
            "max_abs_diff_vs_by_length": round(float(np.abs(pooled - reference).max()), 6),
        }
    return out
