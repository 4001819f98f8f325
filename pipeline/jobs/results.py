"""A job's output files: one line per completed document, one per document that is not.

Results may be published more than once for a document (a worker killed after publishing,
before committing, scores the batch again); the file has exactly one line per document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

RESULT_FIELDS = (
    "document_id", "label", "label_score", "top_labels", "top_scores", "tokens", "chunks",
    "truncated", "embedding", "model_version",
)  # fmt: skip


def result_line(document_id: str, result: Mapping[str, Any]) -> dict[str, Any]:
    row = {name: result.get(name) for name in RESULT_FIELDS}
    row["document_id"] = document_id
    return row


def unique_results(
    results: Iterable[tuple[str, Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """(document id, decoded result) pairs -> one line per document, the first one kept."""
    lines: dict[str, dict[str, Any]] = {}
    for document_id, result in results:
        if document_id not in lines:
            lines[document_id] = result_line(document_id, result)
    return lines


def error_lines(
    failures: Iterable[tuple[str, str, str]], completed: set[str]
) -> dict[str, dict[str, str]]:
    """(document id, reason, detail) of dead letters -> one line per document not completed,
    the latest reason kept (a document refused for the budget, then failed, says failed)."""
    lines: dict[str, dict[str, str]] = {}
    for document_id, reason, detail in failures:
        if document_id in completed:
            continue  # refused once, then scored after a resume
        lines[document_id] = {"document_id": document_id, "reason": reason, "detail": detail}
    return lines


def write_jsonl(rows: Iterable[Mapping[str, Any]], out: Path | TextIO) -> int:
    count = 0
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8") as handle:
            return write_jsonl(rows, handle)
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count
