"""Reading a job's input: every kind of bad line or file is an input error, the rest goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.jobs.exceptions import JobInputError
from pipeline.jobs.inputs import MAX_TEXT_BYTES, read_inputs


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _line(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_good_lines_are_documents_with_their_metadata_and_tenant(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "in.jsonl",
        [
            _line(id="a", text="first document"),
            b"",  # blank lines are not documents
            _line(id="b", text="second", metadata={"lang": "en", "n": 3}, tenant="acme"),
            _line(id=7, text="numeric id"),
        ],
    )
    inputs = read_inputs(path)
    assert [d.id for d in inputs.documents] == ["a", "b", "7"]
    assert inputs.documents[1].metadata == {"lang": "en", "n": "3"}
    assert inputs.documents[1].tenant == "acme"
    assert inputs.errors == [] and inputs.total == 3


def test_every_bad_line_kind_is_an_error_with_its_reason_and_the_rest_goes_on(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "in.jsonl",
        [
            _line(id="ok1", text="fine"),
            _line(id="empty", text="   \n\t "),
            b'{"id": "badutf8", "text": "caf\xe9"}',
            _line(id="bin", text="abc\x00def"),
            _line(text="no id here"),
            _line(id="ok1", text="duplicate"),
            _line(id="big", text="x" * (MAX_TEXT_BYTES + 1)),
            b"this is not json",
            b"[1, 2]",
            _line(id="notext"),
            _line(id="num", text=5),
            _line(id="ctl", text="\x01\x02\x03\x04 a"),
            b'{"id": "surrogate", "text": "\\ud800"}',
            _line(id="bad\nid", text="x"),
            _line(id="meta", text="x", metadata={"a": {"nested": 1}}),
            _line(id="ok2", text="also fine"),
        ],
    )
    inputs = read_inputs(path)
    assert [d.id for d in inputs.documents] == ["ok1", "ok2"]
    reasons = {(e.key, e.document_id): e.reason for e in inputs.errors}
    assert reasons == {
        ("empty", "empty"): "empty-text",
        ("#3", "badutf8"): "invalid-utf8",
        ("bin", "bin"): "binary-content",
        ("#5", None): "missing-id",
        ("#6", "ok1"): "duplicate-id",
        ("big", "big"): "too-large",
        ("#8", None): "not-json",
        ("#9", None): "not-json",
        ("notext", "notext"): "empty-text",
        ("num", "num"): "invalid-field",
        ("ctl", "ctl"): "binary-content",
        ("surrogate", "surrogate"): "invalid-utf8",
        ("#14", None): "invalid-id",
        ("meta", "meta"): "invalid-field",
    }
    assert inputs.total == 16
    assert len(set(inputs.document_keys())) == 16  # every line its own key: one output line each
    dup = next(e for e in inputs.errors if e.reason == "duplicate-id")
    assert dup.where.endswith(":6") and "in.jsonl:1" in dup.detail
    assert all(e.raw for e in inputs.errors)  # the dead letter carries the line


def test_a_directory_is_one_document_per_file_named_by_relative_path(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.md").write_text("beta")
    (root / "empty.txt").write_text("  ")
    (root / "blob.bin").write_bytes(b"\x89PNG\x00\x01")
    (root / "latin1.txt").write_bytes(b"caf\xe9")
    (root / "huge.txt").write_bytes(b"y" * (MAX_TEXT_BYTES + 1))
    inputs = read_inputs(root)
    assert [d.id for d in inputs.documents] == ["a.txt", "sub/b.md"]
    assert {e.key: e.reason for e in inputs.errors} == {
        "blob.bin": "binary-content",
        "empty.txt": "empty-text",
        "huge.txt": "too-large",
        "latin1.txt": "invalid-utf8",
    }


@pytest.mark.parametrize("kind", ["missing", "empty-file", "empty-dir"])
def test_an_unusable_input_is_one_error_exit_2(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x"
    if kind == "empty-file":
        path.write_text("\n\n")
    elif kind == "empty-dir":
        path.mkdir()
    with pytest.raises(JobInputError) as caught:
        read_inputs(path)
    assert caught.value.exit_code == 2
    assert str(path) in str(caught.value)
