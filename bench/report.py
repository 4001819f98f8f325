"""Ratios to the same-run baselines, the issue's targets, a text table and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _flat_rate(entry: dict[str, Any]) -> float | None:
    return entry.get("flat", {}).get("events_per_s")


def _load(entry: dict[str, Any], load: float) -> dict[str, Any] | None:
    for phase in entry.get("loads", []):
        if phase.get("load") == load and "p99_ms" in phase:
            return phase
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ratios(configs: list[dict[str, Any]], loads: tuple[float, ...]) -> dict[str, Any]:
    """inferstream (reference) over each baseline: throughput, CPU per event, p99 per load."""
    by_role = {c["role"]: c for c in configs if c["role"] != "sweep"}
    ref = by_role.get("reference")
    if ref is None:
        return {}
    out: dict[str, Any] = {}
    for role in ("floor", "per-event", "ceiling"):
        base = by_role.get(role)
        if base is None:
            continue
        entry: dict[str, Any] = {
            "throughput": _ratio(_flat_rate(ref), _flat_rate(base)),
            "cpu_per_event": _ratio(
                ref.get("flat", {}).get("cpu_s_per_1k"), base.get("flat", {}).get("cpu_s_per_1k")
            ),
        }
        for load in loads:
            a, b = _load(ref, load), _load(base, load)
            entry[f"p99_at_{load:g}"] = _ratio(a and a["p99_ms"], b and b["p99_ms"])
        out[role] = entry
    floor = _flat_rate(by_role["floor"]) if "floor" in by_role else None
    out["sweep_throughput_vs_floor"] = {
        c["name"]: _ratio(_flat_rate(c), floor) for c in configs if c["kind"] == "inferstream"
    }
    return out


def targets(configs: list[dict[str, Any]], ratio: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, evaluated on this run."""
    ref = next((c for c in configs if c["role"] == "reference"), None)
    if ref is None:
        return {}
    half = _load(ref, 0.5)
    bound = 3 * ref["window_ms"]
    floor = ratio.get("floor", {}).get("throughput")
    ceiling = ratio.get("ceiling", {}).get("throughput")
    return {
        "throughput_ge_70pct_of_floor": None if floor is None else floor >= 0.7,
        "p99_at_50pct_le_3x_window": None if half is None else half["p99_ms"] <= bound,
        "stretch_ge_50pct_of_ceiling": None if ceiling is None else ceiling >= 0.5,
    }


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def table(result: dict[str, Any]) -> str:
    configs = result["configs"]
    loads = result["plan"]["loads"]
    floor = next((c for c in configs if c["role"] == "floor"), None)
    ceiling = next((c for c in configs if c["role"] == "ceiling"), None)
    head = f"{'config':<36} {'role':<9} {'ev/s':>7} {'/floor':>6} {'/ceil':>6}"
    head += f" {'cpu/1k':>7} {'batch':>6}"
    for load in loads:
        head += f" {f'p50/p99 @{load:.0%}':>15}"
    lines = [head, "-" * len(head)]
    for c in configs:
        rate = _flat_rate(c)
        batch = c.get("batches", {}).get("flat", {}).get("mean")
        row = (
            f"{c['name']:<36} {c['role']:<9} {_fmt(rate):>7}"
            f" {_fmt(_ratio(rate, floor and _flat_rate(floor)), '.2f'):>6}"
            f" {_fmt(_ratio(rate, ceiling and _flat_rate(ceiling)), '.2f'):>6}"
            f" {_fmt(c.get('flat', {}).get('cpu_s_per_1k'), '.3f'):>7} {_fmt(batch, '.1f'):>6}"
        )
        for load in loads:
            phase = _load(c, load)
            if phase is None:
                cell = "skipped"
            else:
                cell = f"{_fmt(phase['p50_ms'], '.1f')}/{_fmt(phase['p99_ms'], '.1f')}"
                cell += "*" if phase.get("saturated") else ""
            row += f" {cell:>15}"
        lines.append(row)
    lines.append("")
    lines.append(
        "ev/s: completed events/s flat out; cpu/1k: worker CPU s per 1,000 events; "
        "batch: mean batch size (provenance); latency ms from the request's record timestamp "
        "to the result's arrival at offered loads (% of the reference's ev/s); * saturated"
    )
    rates = ", ".join(f"{r:.0f}/s" for r in result.get("rates", []))
    lines.append(f"offered rates: {rates}")
    for role, entry in result.get("ratios", {}).items():
        if role != "sweep_throughput_vs_floor":
            lines.append(f"reference / {role}: {entry}")
    lines.append(f"targets: {result.get('targets')}")
    return "\n".join(lines)


def write(result: dict[str, Any], name: str, out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
