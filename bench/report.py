"""Ratios to the same-run baselines, the issue's targets, a text table and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASELINES = ("floor", "per-event", "ceiling", "processes")
DRIFT_LOAD = 0.9  # the drift worker must sustain 90 % of the reference's flat-out rate


def _flat_rate(entry: dict[str, Any] | None) -> float | None:
    return None if entry is None else entry.get("flat", {}).get("events_per_s")


def _flat_cpu(entry: dict[str, Any] | None) -> float | None:
    return None if entry is None else entry.get("flat", {}).get("cpu_s_per_1k")


def _load(entry: dict[str, Any] | None, load: float, field: str = "p99_ms") -> dict | None:
    """The phase of `entry` at `load` that measured `field` (None: not run or skipped)."""
    for phase in (entry or {}).get("loads", []):
        if phase.get("load") == load and field in phase:
            return phase
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _by_role(configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first config of each role (the sweep has many and is not a baseline)."""
    out: dict[str, dict[str, Any]] = {}
    for c in configs:
        if c["role"] != "sweep":
            out.setdefault(c["role"], c)
    return out


def ratios(configs: list[dict[str, Any]], loads: tuple[float, ...]) -> dict[str, Any]:
    """inferstream (reference) over each baseline: throughput, CPU per event, p99 per load."""
    by_role = _by_role(configs)
    ref = by_role.get("reference")
    if ref is None:
        return {}
    out: dict[str, Any] = {}
    for role in BASELINES:
        base = by_role.get(role)
        if base is None:
            continue
        entry: dict[str, Any] = {
            "throughput": _ratio(_flat_rate(ref), _flat_rate(base)),
            "cpu_per_event": _ratio(_flat_cpu(ref), _flat_cpu(base)),
        }
        for load in loads:
            a, b = _load(ref, load), _load(base, load)
            entry[f"p99_at_{load:g}"] = _ratio(a and a["p99_ms"], b and b["p99_ms"])
        out[role] = entry
    ceiling = _flat_rate(by_role.get("ceiling"))
    out["throughput_vs_ceiling"] = {c["name"]: _ratio(_flat_rate(c), ceiling) for c in configs}
    return out


def _check(what: str, measured: float | None, op: str, bound: float) -> dict[str, Any]:
    ok = None if measured is None else measured >= bound if op == ">=" else measured <= bound
    return {"target": what, "measured": measured, "bound": f"{op} {bound:g}", "ok": ok}


def targets(configs: list[dict[str, Any]], ratio: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the value measured on this run (ok None: not measured)."""
    by_role = _by_role(configs)
    ref = by_role.get("reference")
    if ref is None:
        return {}
    ceiling, floor = ratio.get("ceiling", {}), ratio.get("floor", {})
    half, busy = _load(ref, 0.5), _load(ref, 0.9)
    return {
        "throughput_ge_90pct_of_ceiling": _check(
            "throughput / plain loop (ceiling)", ceiling.get("throughput"), ">=", 0.9
        ),
        "throughput_ge_3.5x_floor": _check(
            "throughput / Faust pass-through (floor)", floor.get("throughput"), ">=", 3.5
        ),
        "cpu_per_event_le_115pct_of_ceiling": _check(
            "CPU per 1,000 events / plain loop, flat out", ceiling.get("cpu_per_event"), "<=", 1.15
        ),
        "p99_at_50pct_load_le_30ms": _check(
            "p99 ms at 50 % load", half and half["p99_ms"], "<=", 30
        ),
        "p99_at_90pct_load_le_100ms": _check(
            "p99 ms at 90 % load", busy and busy["p99_ms"], "<=", 100
        ),
        "drift_sustains_90pct_of_reference": _drift_check(by_role.get("drift"), ref),
        "stretch_cpu_per_event_le_80pct_of_ceiling": _check(
            "CPU per 1,000 events / plain loop, flat out (stretch)",
            ceiling.get("cpu_per_event"),
            "<=",
            0.8,
        ),
    }


def _drift_check(drift: dict[str, Any] | None, ref: dict[str, Any]) -> dict[str, Any]:
    """Sustained = the lag did not grow while 90 % of the reference's rate was offered."""
    # offered 90 % of its own rate when the reference had none: not this target
    phase = _load(drift, DRIFT_LOAD, "sustained") if _flat_rate(ref) else None
    measured = None
    if phase is not None:
        keys = ("offered_per_s", "committed_per_s", "lag_start", "lag_end", "max_lag")
        measured = {k: phase.get(k) for k in (*keys, "lag_growth_per_s", "drain_s")}
        measured["flat_out_vs_reference"] = _ratio(_flat_rate(drift), _flat_rate(ref))
    return {
        "target": "drift worker sustains 90 % of the reference's flat-out rate",
        "measured": measured,
        "bound": "sustained",
        "ok": None if phase is None else phase["sustained"],
    }


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _load_cell(config: dict[str, Any], load: float) -> str:
    if config.get("kind") == "drift":  # no outputs, no latency: its lag, * when it grew
        phase = _load(config, load, "sustained")
        if phase is None:
            return "-"
        return f"lag {_fmt(phase.get('max_lag'))}" + ("" if phase["sustained"] else "*")
    phase = _load(config, load)
    if phase is None:
        return "skipped" if config.get("loads") else "-"
    cell = f"{_fmt(phase['p50_ms'], '.1f')}/{_fmt(phase['p99_ms'], '.1f')}"
    return cell + ("*" if phase.get("saturated") else "")


def table(result: dict[str, Any]) -> str:
    configs = result["configs"]
    loads = result["plan"]["loads"]
    by_role = _by_role(configs)
    floor, ceiling = _flat_rate(by_role.get("floor")), _flat_rate(by_role.get("ceiling"))
    head = f"{'config':<38} {'role':<9} {'ev/s':>7} {'/floor':>6} {'/ceil':>6}"
    head += f" {'cpu/1k':>7} {'batch':>6}"
    for load in loads:
        head += f" {f'p50/p99 @{load:.0%}':>15}"
    lines = [head, "-" * len(head)]
    for c in configs:
        rate = _flat_rate(c)
        batch = c.get("batches", {}).get("flat", {}).get("mean")
        row = (
            f"{c['name']:<38} {c['role']:<9} {_fmt(rate):>7}"
            f" {_fmt(_ratio(rate, floor), '.2f'):>6} {_fmt(_ratio(rate, ceiling), '.2f'):>6}"
            f" {_fmt(_flat_cpu(c), '.3f'):>7} {_fmt(batch, '.1f'):>6}"
        )
        for load in loads:
            row += f" {_load_cell(c, load):>15}"
        if "error" in c:
            row += f"  failed: {c['error'][:80]}"
        lines.append(row)
    lines += [
        "",
        "ev/s: completed events/s flat out; cpu/1k: worker CPU s per 1,000 events (all its "
        "processes); batch: mean batch size (provenance); latency ms from the request's record "
        "timestamp to the result's arrival at offered loads (% of the reference's ev/s); "
        "* saturated; drift: committed offsets/s, max lag (events) per load, * lag grew",
    ]
    rates = ", ".join(f"{r:.0f}/s" for r in result.get("rates", []))
    lines.append(f"offered rates: {rates}")
    lines += _drift_lines(configs)
    for role, entry in result.get("ratios", {}).items():
        if role != "throughput_vs_ceiling":
            lines.append(f"reference / {role}: {entry}")
    lines += ["", *_target_lines(result.get("targets", {}))]
    return "\n".join(lines)


def _drift_lines(configs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for c in configs:
        if c.get("kind") != "drift":
            continue
        for p in c.get("loads", []):
            lines.append(
                f"{c['name']} @{p['load']:.0%} ({_fmt(p.get('offered_per_s'))}/s offered): "
                f"committed {_fmt(p.get('committed_per_s'))}/s, lag {p.get('lag_start')} -> "
                f"{p.get('lag_end')} (max {p.get('max_lag')}, trend "
                f"{_fmt(p.get('lag_growth_per_s'))}/s), drained in {p.get('drain_s')} s: "
                f"{'sustained' if p.get('sustained') else 'NOT sustained'}"
            )
    return lines


def _target_lines(checks: dict[str, Any]) -> list[str]:
    if not checks:
        return ["targets: no reference config in this run"]
    lines = [f"{'target':<58} {'measured':>14} {'bound':>10} {'ok':>4}"]
    lines.append("-" * len(lines[0]))
    for check in checks.values():
        measured = check["measured"]
        if isinstance(measured, dict):  # the drift check: its 90 % phase, summed up
            measured = f"lag {measured.get('lag_start')}->{measured.get('lag_end')}"
        elif measured is not None:
            measured = f"{measured:.3g}"
        ok = {True: "yes", False: "NO", None: "-"}[check["ok"]]
        lines.append(f"{check['target']:<58} {measured or '-':>14} {check['bound']:>10} {ok:>4}")
    return lines


def write(result: dict[str, Any], name: str, out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
