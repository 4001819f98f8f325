"""data_hash covers the canonical input bytes: the values alone decide it, per input kind."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pipeline.core.canonical import float32_rows, int64_rows, utf8_texts
from pipeline.scoring.provenance import data_hashes
from pipeline.streams.fraud import TransactionGenerator, build_features


def test_numeric_rows_hash_their_float32_little_endian_bytes() -> None:
    matrix = build_features(TransactionGenerator(seed=1).generate(50).records).matrix
    hashes = data_hashes(float32_rows(matrix))
    assert len(hashes) == 50 and len(set(hashes)) == 50
    assert float32_rows(matrix)[7] == matrix[7].astype("<f4").tobytes()
    assert hashes[7] == hashlib.sha256(matrix[7].astype("<f4").tobytes()).hexdigest()
    # Replay may hold the rows as float64 or big-endian; the hash only depends on the values.
    assert data_hashes(float32_rows(matrix.astype(np.float64))) == hashes
    assert data_hashes(float32_rows(matrix.astype(">f4"))) == hashes
    assert data_hashes(float32_rows(matrix[::2])) == hashes[::2]


def test_token_rows_and_texts_have_their_own_canonical_bytes() -> None:
    tokens = np.array([[101, 2023, 0], [101, 2023, 7]])
    rows = int64_rows(tokens)
    assert rows[0] == np.array([101, 2023, 0], "<i8").tobytes()
    assert data_hashes(rows)[0] != data_hashes(rows)[1]  # padding and ids both count
    assert data_hashes(int64_rows(tokens.astype(np.int32))) == data_hashes(rows)
    assert utf8_texts(["naïve"]) == ["naïve".encode()]


def test_a_vector_is_not_a_matrix() -> None:
    with pytest.raises(ValueError, match="2-d"):
        float32_rows(np.zeros(4))
