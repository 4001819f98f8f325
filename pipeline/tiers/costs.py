"""Cost of a model version in units per row: its manifest's `cost`, else `<model>/costs.json`.

The model build scripts measure it (mean CPU-seconds per row at a reference batch of 256 rows,
times a price in units per CPU-second). A version with neither costs 0.0 (unknown).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

COST_FILE = "costs.json"


def cost_section(manifest: Any, model_dir: Path | None = None) -> Mapping[str, Any]:
    """The `cost` section of a manifest, or the version's entry in the sibling costs.json
    (only when its sha256 is the manifest's: a rebuilt model needs measuring again)."""
    sections = getattr(manifest, "sections", None) or {}
    cost = sections.get("cost")
    if isinstance(cost, Mapping):
        return cost
    directory = model_dir or getattr(manifest, "directory", None)
    if directory is None:
        return {}
    path = Path(directory).parent / COST_FILE
    try:
        costs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entry = costs.get(manifest.version) if isinstance(costs, Mapping) else None
    if isinstance(entry, Mapping) and entry.get("sha256") == manifest.sha256:
        return entry
    return {}


def units_per_row(manifest: Any, model_dir: Path | None = None) -> float:
    value = cost_section(manifest, model_dir).get("units_per_row", 0.0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
