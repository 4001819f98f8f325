from __future__ import annotations

import numpy as np
import pytest

from pipeline.scoring.token_budget import pool_rows, run_by_length, token_batches


@pytest.mark.parametrize("seed", range(5))
def test_every_row_goes_once_and_calls_stay_within_the_budget(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 256, size=int(rng.integers(1, 300)))
    groups = token_batches(lengths, 1024)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    for group in groups:
        assert len(group) == 1 or len(group) * lengths[group].max() <= 1024


def test_rows_are_grouped_by_length_so_short_ones_are_not_padded_to_long_ones():
    lengths = np.array([200, 10, 201, 11, 12, 199])
    groups = [sorted(g.tolist()) for g in token_batches(lengths, 600)]
    assert groups == [[1, 3, 4], [0, 5], [2]]  # 3x12 | 2x200 | 201 alone (3x201 > 600)


def test_a_row_over_the_budget_is_run_alone_and_does_not_hold_the_others():
    groups = token_batches(np.array([5, 5000, 6, 7]), 100)
    assert [g.tolist() for g in groups] == [[0, 2, 3], [1]]


def test_each_call_is_padded_to_its_own_longest_row():
    lengths = np.array([3, 9, 4, 8])
    matrix = np.zeros((4, 9), dtype=np.int64)
    for r, n in enumerate(lengths):
        matrix[r, :n] = r + 1
    widths = []

    def predict(batch: np.ndarray) -> np.ndarray:
        widths.append(batch.shape[1])
        return batch[:, :1].astype(np.float64)  # the row's own id

    outputs, calls = run_by_length(predict, matrix, lengths, 18)
    assert calls == 2 and widths == [4, 9]
    assert outputs[:, 0].tolist() == [1, 2, 3, 4]  # back in the rows' order


def test_chunks_are_pooled_by_their_token_counts():
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    pooled = pool_rows(rows, np.array([0, 0, 1]), np.array([3, 1, 5]), 2)
    assert pooled.tolist() == [[0.75, 0.25], [2.0, 2.0]]


def test_a_budget_below_one_token_is_refused():
    with pytest.raises(ValueError, match="max_tokens"):
        token_batches(np.array([1]), 0)
