"""The docs stream's preprocessing with the model's real tokenizer (models/docs/1.0.0)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import Settings
from pipeline.models.manifest import ModelManifest, resolve_model_dir
from pipeline.streams.docs.tokens import MAX_CHUNKS, MAX_TEXT_BYTES, DocumentTokenizer


@pytest.fixture(scope="module")
def tokenize() -> DocumentTokenizer:
    directory = resolve_model_dir(Settings().models_dir, "docs")  # built by `make models`
    return DocumentTokenizer(ModelManifest.load(directory), directory)


def doc(text: str, **extra) -> dict:
    return {"document_id": extra.pop("document_id", "d"), "text": text, **extra}


def test_a_short_text_is_one_framed_row_padded_only_to_the_longest(tokenize):
    inputs = tokenize([doc("a cat"), doc("a very much longer sentence about dogs")])
    assert inputs.lengths.tolist()[0] < inputs.lengths.tolist()[1]
    assert inputs.matrix.shape == (2, inputs.lengths.max())
    first = inputs.matrix[0, : inputs.lengths[0]].tolist()
    assert first[0] == tokenize.cls and first[-1] == tokenize.sep
    assert inputs.matrix[0, inputs.lengths[0] :].tolist() == [0] * (
        inputs.matrix.shape[1] - inputs.lengths[0]
    )
    assert inputs.fields["chunks"] == [1, 1] and inputs.fields["truncated"] == [False, False]
    assert inputs.row_request.tolist() == [0, 1]


def test_a_long_text_is_chunked_in_overlapping_windows_or_truncated(tokenize):
    text = " ".join(f"word{i}" for i in range(600))
    inputs = tokenize([doc(text), doc(text, long_policy="truncate")])
    chunks, truncated = inputs.fields["chunks"], inputs.fields["truncated"]
    assert chunks[0] > 1 and chunks[1] == 1
    assert truncated == [False, True]
    assert inputs.lengths.max() == tokenize.max_length
    rows = inputs.matrix[inputs.row_request == 0]
    first, second = rows[0, 1:-1].tolist(), rows[1, 1 : inputs.lengths[1] - 1].tolist()
    assert first[-64:] == second[:64]  # each window overlaps the previous one
    assert inputs.fields["tokens"][0] == int(inputs.lengths[inputs.row_request == 0].sum())
    # what data_hash covers differs: the model reads different inputs
    assert inputs.canonical[0] != inputs.canonical[1]


def test_a_text_past_the_chunk_limit_is_flagged_truncated(tokenize):
    inputs = tokenize([doc("lorem " * (MAX_CHUNKS * 300))])
    assert inputs.fields["chunks"] == [MAX_CHUNKS] and inputs.fields["truncated"] == [True]


def test_bad_documents_are_left_out_with_a_reason_and_the_rest_go_on(tokenize):
    inputs = tokenize([
        doc("   \n"),
        doc("fine"),
        doc("\x00\x01binary"),
        doc("x" * (MAX_TEXT_BYTES + 1)),
        doc("ok", long_policy="squash"),
        doc("no id", document_id=""),
    ])
    assert inputs.valid_index.tolist() == [1]
    reasons = dict(inputs.errors)
    assert reasons[0] == "text: empty or whitespace only"
    assert reasons[2].startswith("text: binary content")
    assert reasons[3] == f"text: over {MAX_TEXT_BYTES} bytes"
    assert reasons[4] == "long_policy: 'squash' is not one of chunk, truncate"
    assert reasons[5] == "document_id: empty"


def test_the_same_text_hashes_the_same_and_keeps_its_request_fields(tokenize):
    one = tokenize([doc("the same words", job_id="a", document_id="x")])
    two = tokenize([doc("other"), doc("the same words", job_id="b", document_id="y")])
    assert one.canonical[0] == two.canonical[1]
    assert two.fields["job_id"] == [None, "b"] and two.fields["document_id"] == ["d", "y"]
    assert np.frombuffer(one.canonical[0], "<i8").tolist() == one.matrix[0].tolist()
