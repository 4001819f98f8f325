"""A job's input: a JSON-lines FILE or a DIR of text files, read into documents + input errors.

FILE: one JSON object per line with "id" and "text", optional "metadata" (an object of
strings) and "tenant"; blank lines are skipped. DIR: every regular file below it is one
document whose id is its path relative to DIR (posix). A bad line or file does not stop the
job: it becomes an `InputError` with a reason, reported in the job's error file and counted as
failed, and the rest goes on.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.jobs.exceptions import JobInputError

# The largest text a document may have, in UTF-8 bytes. The model reads a few thousand tokens
# at most (it chunks longer texts), and a request this size is still far below Kafka's default
# 1 MiB message limit with the Avro framing and headers around it.
MAX_TEXT_BYTES = 512 * 1024
MAX_ID_CHARS = 512
# A text whose share of control characters (other than whitespace) exceeds this is binary.
_BINARY_CONTROL_SHARE = 0.05


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, str] | None = None
    tenant: str | None = None
    where: str = ""  # "file:line" or the relative path, for messages


@dataclass(frozen=True)
class InputError:
    key: str  # unique within the job: the document id, or "#<line>" when it has none of its own
    document_id: str | None
    where: str
    reason: str  # not-json, missing-id, invalid-id, duplicate-id, invalid-field, empty-text,
    #              invalid-utf8, binary-content, too-large
    detail: str
    raw: bytes = b""  # the line or file as read (the dead letter's value), truncated


@dataclass
class Inputs:
    source: Path
    documents: list[Document] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.documents) + len(self.errors)

    def document_keys(self) -> list[str]:
        return [d.id for d in self.documents] + [e.key for e in self.errors]


def read_inputs(path: Path) -> Inputs:
    """The documents and input errors of FILE or DIR; JobInputError when it is not there."""
    path = Path(path)
    if path.is_dir():
        inputs = Inputs(path.resolve())
        for item in _from_dir(path):
            _add(inputs, item)
        if not inputs.total:
            raise JobInputError(f"{path}: no files in this directory")
        return inputs
    if not path.exists():
        raise JobInputError(f"{path}: no such file or directory")
    if not path.is_file():
        raise JobInputError(f"{path}: not a file or directory")
    inputs = Inputs(path.resolve())
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise JobInputError(f"{path}: cannot read: {exc.strerror}") from None
    for item in _from_lines(path, raw):
        _add(inputs, item)
    if not inputs.total:
        raise JobInputError(f"{path}: no documents (the file is empty)")
    return inputs


def _add(inputs: Inputs, item: Document | InputError) -> None:
    if isinstance(item, Document):
        inputs.documents.append(item)
    else:
        inputs.errors.append(item)


def _from_lines(path: Path, raw: bytes) -> Iterator[Document | InputError]:
    seen: dict[str, str] = {}  # id -> where it first appeared
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if line.strip():
            yield _line(f"{path}:{number}", f"#{number}", line, seen)


def _line(where: str, line_key: str, line: bytes, seen: dict[str, str]) -> Document | InputError:
    """One JSON line as a document, or as an input error keyed by its line when it has no id."""

    def error(reason: str, detail: str, doc_id: str | None = None, key: str = "") -> InputError:
        return InputError(key or line_key, doc_id, where, reason, detail, line[:4096])

    try:
        text_line = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return error("invalid-utf8", f"byte {exc.start}: {exc.reason}", _peek_id(line))
    try:
        obj = json.loads(text_line)
    except ValueError as exc:
        return error("not-json", f"not a JSON object: {exc}")
    if not isinstance(obj, dict):
        return error("not-json", f"expected a JSON object, got {type(obj).__name__}")
    doc_id = obj.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)  # numeric ids are common in exports; the same id as text
    if doc_id is None or doc_id == "":
        return error("missing-id", 'no "id"')
    if not isinstance(doc_id, str):
        return error("invalid-id", f'"id" must be a string, got {type(doc_id).__name__}')
    problem = id_problem(doc_id)
    if problem:
        return error("invalid-id", problem)
    if doc_id in seen:
        return error("duplicate-id", f"id {doc_id!r} already on {seen[doc_id]}", doc_id)
    seen[doc_id] = where
    result = _document(obj, doc_id, where)
    if isinstance(result, tuple):
        return error(*result, doc_id, key=doc_id)
    return result


def _peek_id(line: bytes) -> str | None:
    """The id of a line that is not valid UTF-8, when the rest of it is JSON."""
    try:
        obj = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    doc_id = obj.get("id") if isinstance(obj, dict) else None
    return doc_id if isinstance(doc_id, str) and not id_problem(doc_id) else None


def id_problem(doc_id: str) -> str | None:
    if len(doc_id) > MAX_ID_CHARS:
        return f"id is {len(doc_id)} characters, more than {MAX_ID_CHARS}"
    # ids travel in request ids and headers, where control characters break the framing
    if any(unicodedata.category(c) == "Cc" for c in doc_id):
        return "id contains control characters"
    return None


def _document(obj: dict[str, Any], doc_id: str, where: str) -> Document | tuple[str, str]:
    text = obj.get("text")
    if text is None:
        return ("empty-text", 'no "text"')
    if not isinstance(text, str):
        return ("invalid-field", f'"text" must be a string, got {type(text).__name__}')
    problem = text_problem(text)
    if problem:
        return problem
    metadata = obj.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(v, str | int | float | bool) for v in metadata.values()
        ):
            return ("invalid-field", '"metadata" must be an object of strings')
        metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    tenant = obj.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        return ("invalid-field", f'"tenant" must be a string, got {type(tenant).__name__}')
    return Document(doc_id, text, metadata, tenant, where)


def text_problem(text: str) -> tuple[str, str] | None:
    """(reason, detail) when `text` cannot be a document: empty, too large, binary, not UTF-8."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON \\ud800 escape
        return ("invalid-utf8", f"character {exc.start}: {exc.reason}")
    if size > MAX_TEXT_BYTES:
        return ("too-large", f"text is {size} bytes, more than {MAX_TEXT_BYTES}")
    if not text.strip():
        return ("empty-text", "text is empty or whitespace")
    if "\x00" in text:
        return ("binary-content", "text contains NUL bytes")
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r\f\v")
    if controls > _BINARY_CONTROL_SHARE * len(text):
        return ("binary-content", f"{controls} of {len(text)} characters are control characters")
    return None


def _from_dir(root: Path) -> Iterator[Document | InputError]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        doc_id = path.relative_to(root).as_posix()
        where = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            yield InputError(doc_id, doc_id, where, "unreadable", str(exc.strerror))
            continue
        if len(raw) > MAX_TEXT_BYTES:
            detail = f"file is {len(raw)} bytes, more than {MAX_TEXT_BYTES}"
            yield InputError(doc_id, doc_id, where, "too-large", detail, raw[:4096])
            continue
        if b"\x00" in raw:
            yield InputError(doc_id, doc_id, where, "binary-content", "file contains NUL bytes",
                             raw[:4096])  # fmt: skip
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield InputError(doc_id, doc_id, where, "invalid-utf8",
                             f"byte {exc.start}: {exc.reason}", raw[:4096])  # fmt: skip
            continue
        problem = id_problem(doc_id) or None
        if problem:
            yield InputError(f"#{doc_id!r}", None, where, "invalid-id", problem, raw[:4096])
            continue
        reason = text_problem(text)
        if reason:
            yield InputError(doc_id, doc_id, where, *reason, raw[:4096])
            continue
        yield Document(doc_id, text, None, None, where)
