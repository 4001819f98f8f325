"""A job's cost in model-seconds: tokens x the model's measured seconds per token.

The model manifest's `metrics.seconds_per_token` is what the model costs per token, measured
when it was built. Before a job is sent, its tokens are counted with the model's own tokenizer
(`tokenizer.json` in the model directory) when there is one, else estimated as characters / 4.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.jobs.exceptions import JobError

CHARS_PER_TOKEN = 4.0  # the usual rule of thumb for English subword tokenizers


@dataclass(frozen=True)
class ModelCost:
    model_dir: Path
    version: str
    seconds_per_token: float

    def estimate_tokens(self, texts: Sequence[str]) -> int:
        tokenizer = _tokenizer(self.model_dir)
        if tokenizer is None:
            return sum(max(1, round(len(t) / CHARS_PER_TOKEN)) for t in texts)
        total = 0
        for start in range(0, len(texts), 256):
            encoded = tokenizer.encode_batch(list(texts[start : start + 256]))
            total += sum(len(e.ids) for e in encoded)
        return total


def model_cost(model_dir: Path) -> ModelCost:
    """The cost per token of the model in `model_dir` (its manifest's metrics)."""
    path = model_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise JobError(f"{path}: cannot read the model manifest: {exc}") from None
    spt = (manifest.get("metrics") or {}).get("seconds_per_token")
    if not isinstance(spt, int | float) or spt <= 0:
        raise JobError(f"{path}: no metrics.seconds_per_token > 0 to cost a job with")
    return ModelCost(model_dir, str(manifest.get("version", model_dir.name)), float(spt))


def _tokenizer(model_dir: Path) -> object | None:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()  # the estimate counts every token, the model may cut some
    tokenizer.no_padding()  # ... and only real ones
    return tokenizer
