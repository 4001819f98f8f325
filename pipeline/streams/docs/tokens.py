"""Documents -> token-id rows: validation, WordPiece tokenization and the long-document policy.

Versioned as PREPROCESSING_VERSION: the tokenizer file is the model's (its sha256 is in the
manifest), special tokens and windows are ours. A text over the model's token limit is either
truncated to its first window (flagged) or cut into overlapping windows (`chunk`, the default),
each a row; the scorer pools a document's rows into one embedding, weighted by their tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.models.manifest import ModelManifest

PREPROCESSING_VERSION = "minilm-wordpiece/1"
LongPolicy = Literal["chunk", "truncate"]
LONG_POLICIES: tuple[LongPolicy, ...] = ("chunk", "truncate")
DEFAULT_POLICY: LongPolicy = "chunk"
MAX_TEXT_BYTES = 512 * 1024  # a hard limit: larger texts are dead-lettered, not tokenized
MAX_CHUNKS = 32  # windows read per document; the rest of a longer text is flagged truncated
OVERLAP = 64  # tokens each window shares with the previous one, so no sentence is cut blind
# C0 controls other than tab, newline, vertical tab, form feed, carriage return; and DEL
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


@dataclass
class TokenInputs:
    """ModelInputs (pipeline/core/plugin.py) of a window of documents."""

    matrix: np.ndarray  # int64 [rows, longest row], padded with the pad id
    valid_index: np.ndarray
    errors: list[tuple[int, str]]
    lengths: np.ndarray  # real tokens per row
    row_request: np.ndarray  # valid request of each row
    canonical: list[bytes]  # per valid request: the int64 ids of its rows, in order
    fields: dict[str, list[Any]] = field(default_factory=dict)


def text_problem(text: Any) -> str | None:
    """Why a text cannot be embedded, or None."""
    if not isinstance(text, str):
        return "text: not a string"
    if len(text) * 4 > MAX_TEXT_BYTES and len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        return f"text: over {MAX_TEXT_BYTES} bytes"
    if not text.strip():
        return "text: empty or whitespace only"
    controls = len(_CONTROL.findall(text))
    if "\x00" in text or controls > max(1, len(text) // 100):
        return f"text: binary content ({controls} control characters)"
    return None


class DocumentTokenizer:
    """The docs stream's preprocessing, bound to one model's tokenizer."""

    def __init__(self, manifest: ModelManifest, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        path = manifest.attached_file("tokenizer", model_dir)
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls = self._special("[CLS]")
        self.sep = self._special("[SEP]")
        self.pad = manifest.input.pad_id
        self.max_length = manifest.input.max_length
        self.window = self.max_length - 2  # room for [CLS] and [SEP]
        self.step = max(1, self.window - OVERLAP)

    def _special(self, token: str) -> int:
        found = self.tokenizer.token_to_id(token)
        if found is None:
            raise ValueError(f"the tokenizer has no {token} token")
        return int(found)

    def __call__(self, requests: Sequence[Mapping[str, Any]]) -> TokenInputs:
        errors: list[tuple[int, str]] = []
        valid: list[int] = []
        texts: list[str] = []
        policies: list[LongPolicy] = []
        for i, request in enumerate(requests):
            problem = text_problem(request.get("text"))
            policy = request.get("long_policy") or DEFAULT_POLICY
            if problem is None and policy not in LONG_POLICIES:
                problem = f"long_policy: {policy!r} is not one of {', '.join(LONG_POLICIES)}"
            if problem is None and not request.get("document_id"):
                problem = "document_id: empty"
            if problem is not None:
                errors.append((i, problem))
                continue
            valid.append(i)
            texts.append(request["text"])
            policies.append(policy)
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
        rows: list[list[int]] = []
        owners: list[int] = []
        canonical: list[bytes] = []
        tokens, chunks, truncated = [], [], []
        for n, (encoding, policy) in enumerate(zip(encodings, policies, strict=True)):
            windows, cut = self._windows(encoding.ids, policy)
            framed = [[self.cls, *w, self.sep] for w in windows]
            rows += framed
            owners += [n] * len(framed)
            canonical.append(np.concatenate([np.asarray(r, "<i8") for r in framed]).tobytes())
            tokens.append(sum(len(r) for r in framed))
            chunks.append(len(framed))
            truncated.append(cut)
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.full((len(rows), int(lengths.max()) if len(rows) else 1), self.pad, np.int64)
        for r, row in enumerate(rows):
            matrix[r, : len(row)] = row
        picked = [requests[i] for i in valid]
        return TokenInputs(
            matrix=matrix,
            valid_index=np.asarray(valid, dtype=np.int64),
            errors=errors,
            lengths=lengths,
            row_request=np.asarray(owners, dtype=np.int64),
            canonical=canonical,
            fields={
                "job_id": [r.get("job_id") for r in picked],
                "document_id": [r["document_id"] for r in picked],
                "tokens": tokens,
                "chunks": chunks,
                "truncated": truncated,
            },
        )

    def _windows(self, ids: list[int], policy: LongPolicy) -> tuple[list[list[int]], bool]:
        """The document's windows of at most `window` ids, and whether any text was left out."""
        if not ids:  # text of characters the vocabulary drops: one empty window, [CLS][SEP]
            return [[]], False
        if len(ids) <= self.window:
            return [ids], False
        if policy == "truncate":
            return [ids[: self.window]], True
        windows = []
        start = 0
        while len(windows) < MAX_CHUNKS:
            windows.append(ids[start : start + self.window])
            if start + self.window >= len(ids):
                return windows, False
            start += self.step
        return windows, True


def estimated_tokens(value: bytes | None) -> int:
    """The engine's window cost of a raw request: about 4 bytes of English per token."""
    return 2 + (len(value) // 4 if value else 0)
