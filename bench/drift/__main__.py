"""Drift detector benchmark.

    .venv/bin/python -m bench.drift            # full run (minutes), JSON under bench/results/
    .venv/bin/python -m bench.drift --smoke    # seconds; checks that everything runs

Measures, for 20 independent N(0, 1) features and a 5,000-row reference:
- ERT: rows between false alarms (OPEN events) on stationary data, batches of K rows;
- detection delay (rows after the change until the changed feature's alert opens) for a
  +0.5 sd mean shift and a 1 -> 1.5 sd change in one feature, over seeded runs;
- detection delay at batches of 256 (checks every K rows inside each batch);
- update() throughput (CPU time, one process) for batches of 256 and of 10 rows, and beside it
  the fraud stream's per-batch work on the engine: features, ONNX scoring, drift update;
- ERT on a stationary AR(1) stream (phi = 0.5), calibrated iid and by block bootstrap of the
  reference recorded in arrival order, over 16 references; the same for 5 categorical
  (G-test) features whose category repeats in bursts (P(repeat) = 0.5), over 8;
- the time-of-day watch: a 10 % night-shift injection (detection rate, delay) and false alarms
  on a stationary diurnal stream of 20,000 rows;
- baselines (Alibi Detect KSDrift, River KSWIN) on the same data, in their own interpreter:
  --baseline-python, INFERSTREAM_BENCH_BASELINE_PYTHON, or a venv that --setup-baselines
  builds from bench/drift/baselines-requirements.txt (their numpy < 2 pin cannot share the
  project's environment); when that install fails its exact error is printed as the skip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import chi2

from bench.drift import scenarios
from bench.drift.scenarios import SHIFT, VARIANCE, Scenario
from pipeline.cli import Parser, non_negative_int, positive_float, positive_int
from pipeline.drift import DriftConfig

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
BASELINE_VENV = Path(os.environ.get("INFERSTREAM_BENCH_BASELINE_VENV", "/tmp/benchvenv"))
DEFAULT_BASELINE_PYTHON = BASELINE_VENV / "bin" / "python"
BASELINE_REQUIREMENTS = Path(__file__).with_name("baselines-requirements.txt")
ERT_ROWS_PER_RUN = 500_000
BASELINE_ERT_ROWS = 1_000_000  # KSDrift: ~50 false alarms expected at its ERT of ~20,000
KSWIN_ERT_ROWS = 5_000  # KSWIN alarms every few dozen rows; this is plenty
KSWIN_WARM = 500  # stationary rows KSWIN sees before the change
STICKY_FEATURES, STICKY_STAY = 5, 0.5  # bursty categorical streams: features, P(repeat)


def _map(workers: int, fn, items: list) -> list:
    if workers <= 1:
        return [fn(item) for item in items]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def measure_ert(args: argparse.Namespace, config: DriftConfig) -> dict:
    runs = max(1, -(-args.ert_rows // ERT_ROWS_PER_RUN))
    per_run = args.ert_rows // runs
    started = time.perf_counter()
    fn = partial(
        _false_alarms,
        rows=per_run,
        n_ref=args.n_ref,
        d=args.features,
        batch=config.check_every,
        cache=args.cache,
        config=config,
    )
    results = _map(args.workers, fn, [1000 + i for i in range(runs)])
    rows = sum(r["rows"] for r in results)
    opens = sum(r["opens"] for r in results)
    # exact Poisson 95% interval on the alarm count, turned into rows per alarm
    low = rows / (chi2.ppf(0.975, 2 * opens + 2) / 2)
    high = rows / (chi2.ppf(0.025, 2 * opens) / 2) if opens else None
    return {
        "rows": rows,
        "runs": runs,
        "false_alarms": opens,
        "batch": config.check_every,
        "ert": rows / opens if opens else None,
        "ert_95ci": [low, high],
        "target": config.target_ert,
        "seconds": time.perf_counter() - started,
    }


def _false_alarms(seed: int, **kwargs) -> dict:
    return scenarios.count_false_alarms(seed, **kwargs)


def _delay(seed: int, **kwargs) -> dict:
    return scenarios.detection_delay(seed, **kwargs)


def measure_delays(
    args: argparse.Namespace, config: DriftConfig, scenario: Scenario, batch: int
) -> dict:
    fn = partial(
        _delay,
        n_ref=args.n_ref,
        d=args.features,
        scenario=scenario,
        batch=batch,
        cache=args.cache,
        config=config,
    )
    results = _map(args.workers, fn, list(range(args.runs)))
    return {
        "scenario": scenario.name,
        "batch": batch,
        **scenarios.summarise_delays(results),
        "delays": [r["delay"] for r in results],
    }


def run_baselines(args: argparse.Namespace, python: Path) -> dict:
    """Write the shared data, run bench/drift/baselines.py under `python`, read its JSON."""
    d, n_ref = args.features, args.n_ref
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        out = Path(tmp) / "out.json"
        ert_stream = np.concatenate(
            list(scenarios.stationary_chunks(1000, min(BASELINE_ERT_ROWS, args.ert_rows), d))
        )
        arrays: dict[str, np.ndarray] = {
            "ert_reference": scenarios.reference(1000, n_ref, d),  # = our first ERT run
            "ert_stream": ert_stream,
            "kswin_stream": ert_stream[:KSWIN_ERT_ROWS],
            "kswin_warm": np.asarray(KSWIN_WARM),
            "ksdrift_batch": np.asarray(1000),
            "feature": np.asarray(SHIFT.feature),
            "references": np.stack([scenarios.reference(s, n_ref, d) for s in range(args.runs)]),
        }
        for key, scenario in (("shift", SHIFT), ("variance", VARIANCE)):
            runs = [scenarios.change_run(s, d, scenario) for s in range(args.runs)]
            length = max(r.shape[0] for r, _ in runs)
            padded = np.zeros((args.runs, length, d), dtype=np.float32)
            for i, (rows, _) in enumerate(runs):
                padded[i, : rows.shape[0]] = rows
            arrays[f"{key}_rows"] = padded
            arrays[f"{key}_change"] = np.array([c for _, c in runs])
        np.savez(data, **arrays)
        script = Path(__file__).with_name("baselines.py")
        started = time.perf_counter()
        try:
            subprocess.run(
                [str(python), str(script), str(data), str(out)],
                check=True,
                timeout=args.baseline_timeout,
                capture_output=True,
                text=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            return {"skipped": f"baseline run failed: {exc} {detail[-500:]}"}
        result = json.loads(out.read_text())
    result["seconds"] = time.perf_counter() - started
    for name in ("ksdrift", "kswin"):
        entry = result.get(name, {})
        for key, scenario in (("shift", SHIFT), ("variance", VARIANCE)):
            if key in entry:
                runs = [{"delay": d} for d in entry[key]]
                entry[key] = {
                    "scenario": scenario.name,
                    **scenarios.summarise_delays(runs),
                    "delays": entry[key],
                }
    return result


def setup_baselines(venv: Path = BASELINE_VENV) -> str | None:
    """Create `venv` with the baseline libraries; None when done, else the exact install error."""
    python = venv / "bin" / "python"
    steps = []
    if not python.exists():
        steps.append([sys.executable, "-m", "venv", str(venv)])
    steps.append([str(python), "-m", "pip", "install", "-q", "-r", str(BASELINE_REQUIREMENTS)])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{' '.join(step[:3])}...: {exc}"
        if done.returncode:
            error = (done.stderr or done.stdout).strip().splitlines()
            return f"`{' '.join(step)}` exited {done.returncode}: " + " | ".join(error[-6:])
    return None


def _baseline_python(args: argparse.Namespace) -> Path | None:
    if args.baseline_python == "none":
        return None
    if args.baseline_python:
        return Path(args.baseline_python)
    env = os.environ.get("INFERSTREAM_BENCH_BASELINE_PYTHON")
    if env:
        return Path(env)
    return DEFAULT_BASELINE_PYTHON if DEFAULT_BASELINE_PYTHON.exists() else Path(sys.executable)


def measure_ar1(args: argparse.Namespace, config: DriftConfig) -> dict:
    """False alarms on AR(1) phi=0.5 streams: iid calibration vs block bootstrap.

    The bootstrap threshold is calibrated per reference (each one its own ordered sample), and
    its target is the false-alarm rate averaged over references: a few references say little
    (one fires 4x as often as another), so the rows are spread over `--ar1-refs` of them and
    the interval is a bootstrap over references, not a Poisson one over alarms.
    """
    out: dict = {"phi": 0.5}
    out.update(
        _dependent_erts(args, config, scenarios.ar1_false_alarms, args.ar1_rows, args.ar1_refs,
                        d=args.features, phi=0.5)
    )  # fmt: skip
    return out


def measure_sticky(args: argparse.Namespace, config: DriftConfig) -> dict:
    """The same for categorical (G-test) features whose category repeats in bursts."""
    out: dict = {"stay": STICKY_STAY, "features": STICKY_FEATURES}
    out.update(
        _dependent_erts(args, config, scenarios.sticky_false_alarms, args.sticky_rows,
                        args.sticky_refs, d=STICKY_FEATURES, stay=STICKY_STAY)
    )  # fmt: skip
    return out


def _dependent_erts(
    args: argparse.Namespace, config: DriftConfig, scenario, rows: int, refs: int, **options
) -> dict:
    """ERT of `scenario` calibrated iid (one reference, the rate is far off anyway) and by
    block bootstrap (rows spread over `refs` references, each calibrated on its own)."""
    out: dict = {}
    refs = max(1, min(refs, rows // 10_000))
    for mode in ("iid", "block-bootstrap"):
        bootstrap = mode == "block-bootstrap"
        seeds = [2000 + i for i in range(refs if bootstrap else 2)]
        each = rows // refs if bootstrap else min(rows // refs, 100_000)
        started = time.perf_counter()
        fn = partial(
            scenario,
            rows=each,
            n_ref=args.n_ref,
            calibration=mode,
            cache=args.cache,
            config=config,
            **options,
        )
        results = _map(args.workers, fn, seeds)
        total = sum(r["rows"] for r in results)
        opens = sum(r["opens"] for r in results)
        out[mode] = {
            "rows": total,
            "references": len(results),
            "false_alarms": opens,
            "ert": total / opens if opens else None,
            "ert_95ci": _reference_interval(results),
            "opens_per_reference": [r["opens"] for r in results],
            "threshold": results[0]["threshold"],
            "thresholds": [r["threshold"] for r in results],
            "calibration": results[0]["calibration"],
            "seconds": time.perf_counter() - started,
        }
    return out


def _reference_interval(results: list[dict], draws: int = 2000) -> list[float | None]:
    """95 % interval of rows per alarm, resampling whole references (their alarms cluster);
    None for an unbounded end (resamples with no alarm)."""
    rows = np.array([r["rows"] for r in results], dtype=np.float64)
    opens = np.array([r["opens"] for r in results], dtype=np.float64)
    if rows.size < 2:
        return [None, None]
    pick = np.random.default_rng(0).integers(0, rows.size, (draws, rows.size))
    # quantiles of the alarm rate, turned into rows per alarm (an ERT of a resample without
    # alarms is infinite, and quantiles of infinities are not numbers)
    rate = opens[pick].sum(axis=1) / rows[pick].sum(axis=1)
    low_rate, high_rate = np.quantile(rate, [0.025, 0.975])
    return [
        None if high_rate == 0 else float(1.0 / high_rate),
        None if low_rate == 0 else float(1.0 / low_rate),
    ]


def measure_diurnal(args: argparse.Namespace) -> dict:
    night = [scenarios.diurnal_run(seed, True) for seed in range(args.runs)]
    calm = [scenarios.diurnal_run(seed, False) for seed in range(args.runs)]
    delays = [r["delay"] for r in night if r["delay"] is not None]
    return {
        "night_share": scenarios.NIGHT_SHARE,
        "rows_per_day": scenarios.ROWS_PER_DAY,
        "night_detected": len(delays),
        "night_runs": len(night),
        "night_delay_median": float(np.median(delays)) if delays else None,
        "stationary_runs": len(calm),
        "stationary_rows_each": calm[0]["rows"] if calm else 0,
        "stationary_false_alarms": sum(r["opens"] for r in calm),
    }


def _fmt(value: object, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _interval(ci: list[float | None]) -> str:
    if ci == [None, None]:
        return ""
    return f"; 95 % interval {_fmt(ci[0]) if ci[0] else 'inf'}-{_fmt(ci[1]) if ci[1] else 'inf'}"


def print_table(report: dict) -> None:
    ert = report["ert"]
    lines = [
        f"drift bench: d={report['features']} features, reference {report['n_ref']:,} rows, "
        f"windows {report['config']['windows']}, K={report['config']['check_every']}, "
        f"threshold z>{report['threshold']:.3f}",
        "",
        f"{'detector':<44} {'ERT rows':>10} {'alarms':>7} {'shift med':>9} {'p90':>6} "
        f"{'found':>6} {'var med':>8} {'p90':>6} {'found':>6}",
    ]

    def row(name: str, ert_value, alarms, shift: dict | None, var: dict | None) -> str:
        shift, var = shift or {}, var or {}
        found = lambda s: f"{s.get('detected', '-')}/{s.get('runs', '-')}" if s else "-"  # noqa: E731
        return (
            f"{name:<44} {_fmt(ert_value):>10} {_fmt(alarms):>7} "
            f"{_fmt(shift.get('median')):>9} {_fmt(shift.get('p90')):>6} {found(shift):>6} "
            f"{_fmt(var.get('median')):>8} {_fmt(var.get('p90')):>6} {found(var):>6}"
        )

    delays = report["delays"]
    lines.append(
        row(
            f"inferstream sliding KS (batches of {report['config']['check_every']})",
            ert["ert"],
            ert["false_alarms"],
            delays["shift"],
            delays["variance"],
        )
    )
    if "shift_batch256" in delays:
        lines.append(
            row(
                "inferstream, batches of 256 (checks every K)",
                None,
                None,
                delays["shift_batch256"],
                None,
            )
        )
    for key in ("ksdrift", "kswin"):
        entry = report.get("baselines", {}).get(key)
        if not entry:
            continue
        if "skipped" in entry:
            lines.append(f"{key:<44} skipped: {entry['skipped'][:60]}")
            continue
        lines.append(
            row(
                entry["name"][:44],
                entry["ert"]["ert"],
                entry["ert"]["alarms"],
                entry.get("shift"),
                entry.get("variance"),
            )
        )
    if "skipped" in report.get("baselines", {}):
        lines.append(f"baselines skipped: {report['baselines']['skipped'][:80]}")
    big = delays.get("shift_batch256", {})
    if "published_median" in big:
        lines.append(
            f"batches of 256: the alert fires at its check (delay above); counted to the end "
            f"of the batch that returned it: median {big['published_median']:,.0f}, "
            f"p90 {big['published_p90']:,.0f} rows"
        )
    lines += [
        "",
        f"ERT measured over {ert['rows']:,} stationary rows ({ert['runs']} references): "
        f"{_fmt(ert['ert'])} rows (95% CI {_fmt(ert['ert_95ci'][0])}..{_fmt(ert['ert_95ci'][1])}),"
        f" target {ert['target']:,.0f}",
        "throughput (update() rows/s, CPU time of one process): "
        + ", ".join(f"batch {b}: {v:,.0f}" for b, v in report["throughput"].items()),
    ]
    engine = report.get("engine")
    if engine:
        lines.append(
            f"fraud stream, batches of {engine['batch']} (rows/s, CPU): features "
            f"{engine['features_rows_per_s']:,.0f}, "
            f"scoring (ONNX) {engine['score_rows_per_s']:,.0f}, "
            f"drift update ({engine['drift_features']} features) "
            f"{engine['drift_rows_per_s']:,.0f}"
        )
    dependent = {
        "ar1": lambda r: f"AR(1) phi={r['phi']} ERT",
        "sticky": lambda r: f"bursty categorical (G, P(repeat)={r['stay']}) ERT",
    }
    for section, title in dependent.items():
        found = report.get(section)
        for mode in ("iid", "block-bootstrap") if found else ():
            m = found[mode]
            lines.append(
                f"{title(found)}, {m['calibration']}: {_fmt(m['ert'])} rows "
                f"({m['false_alarms']} alarms in {m['rows']:,} rows of "
                f"{m['references']} reference(s){_interval(m['ert_95ci'])}, "
                f"threshold {min(m['thresholds']):.3f}-{max(m['thresholds']):.3f})"
            )
    diurnal = report.get("diurnal")
    if diurnal:
        lines.append(
            f"time of day: night shift ({diurnal['night_share']:.0%} of traffic into 00-05h) "
            f"detected {diurnal['night_detected']}/{diurnal['night_runs']}, median delay "
            f"{_fmt(diurnal['night_delay_median'])} rows ({diurnal['rows_per_day']:,} rows/day); "
            f"stationary: {diurnal['stationary_false_alarms']} alarms in "
            f"{diurnal['stationary_runs']} x {diurnal['stationary_rows_each']:,} rows"
        )
    lines += [
        "",
        "targets: "
        + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in report["targets"].items()),
    ]
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    parser = Parser(prog="python -m bench.drift", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny run: seconds, no baselines")
    parser.add_argument(
        "--runs", type=positive_int, default=50, help="seeded runs per change scenario"
    )
    parser.add_argument(
        "--ert-rows",
        type=positive_int,
        default=4_000_000,
        help="stationary rows for the ERT estimate",
    )
    parser.add_argument("--features", type=positive_int, default=20)
    parser.add_argument("--n-ref", type=positive_int, default=5000)
    parser.add_argument("--workers", type=positive_int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--cache", type=Path, default=None, help="calibration cache directory")
    parser.add_argument(
        "--baseline-python", default="", help="interpreter with river/alibi-detect, or 'none'"
    )
    parser.add_argument("--baseline-timeout", type=positive_float, default=1800.0)
    parser.add_argument(
        "--setup-baselines",
        action="store_true",
        help=f"pip-install the baselines into {BASELINE_VENV} first (a few minutes, ~1 GB)",
    )
    parser.add_argument(
        "--ar1-rows",
        type=non_negative_int,
        default=6_400_000,
        help="AR(1) rows for the bootstrap ERT (0 skips it)",
    )
    parser.add_argument(
        "--ar1-refs",
        type=positive_int,
        default=16,
        help="AR(1) references (each calibrated on its own) the bootstrap rows are spread over",
    )
    parser.add_argument(
        "--sticky-rows",
        type=non_negative_int,
        default=1_600_000,
        help="rows of bursty categorical streams for the G bootstrap ERT (0 skips it)",
    )
    parser.add_argument(
        "--sticky-refs", type=positive_int, default=8, help="references for those rows"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.ert_rows, args.workers, args.baseline_python = 3, 20_000, 1, "none"
        args.ar1_rows = args.sticky_rows = 0
    setup_error = setup_baselines() if args.setup_baselines and not args.smoke else None
    config = DriftConfig()
    started = time.perf_counter()
    probe = scenarios.make_detector(
        scenarios.reference(0, args.n_ref, args.features), args.cache, config
    )
    report: dict = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "features": args.features,
        "n_ref": args.n_ref,
        "config": config.to_dict(),
        "threshold": float(probe.thresholds[0]),
        "calibration_seconds": time.perf_counter() - started,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
        },
    }
    report["ert"] = measure_ert(args, config)
    report["delays"] = {
        "shift": measure_delays(args, config, SHIFT, config.check_every),
        "variance": measure_delays(args, config, VARIANCE, config.check_every),
        "shift_batch256": measure_delays(args, config, SHIFT, 256),
    }
    rows = {256: 3_000 if args.smoke else 300_000, 10: 1_000 if args.smoke else 50_000}
    report["throughput"] = {
        batch: scenarios.throughput(
            args.n_ref, args.features, batch, n, args.cache, config, repeats=1 if args.smoke else 3
        )
        for batch, n in rows.items()
    }
    report["engine"] = scenarios.worker_rates(5_000 if args.smoke else 40_000)
    if args.ar1_rows:
        report["ar1"] = measure_ar1(args, config)
    if args.sticky_rows:
        report["sticky"] = measure_sticky(args, config)
    report["diurnal"] = measure_diurnal(args)
    python = _baseline_python(args)
    if setup_error:
        report["baselines"] = {"skipped": f"baseline install failed: {setup_error}"}
    else:
        report["baselines"] = (
            run_baselines(args, python) if python else {"skipped": "disabled (--smoke or 'none')"}
        )
    ert, shift, var = report["ert"], report["delays"]["shift"], report["delays"]["variance"]
    big = report["delays"]["shift_batch256"]
    diurnal = report["diurnal"]
    report["targets"] = {
        "ERT within 25%": ert["ert"] is not None
        and abs(ert["ert"] / config.target_ert - 1) <= 0.25,
        "shift median <= 150": shift.get("median", 1e9) <= 150,
        "shift p90 <= 250": shift.get("p90", 1e9) <= 250,
        "batch 256 shift median <= 150": big.get("median", 1e9) <= 150,
        "batch 256 shift p90 <= 250": big.get("p90", 1e9) <= 250,
        ">= 300k rows/s (batch 256)": report["throughput"][256] >= 300_000,
        "variance always detected": var["detected"] == var["runs"],
        "night shift always detected": diurnal["night_detected"] == diurnal["night_runs"],
        "0 diurnal false alarms": diurnal["stationary_false_alarms"] == 0,
        "drift update cheaper than the ONNX call alone": report["engine"]["drift_rows_per_s"]
        >= report["engine"]["score_rows_per_s"],
    }
    if "ar1" in report:
        boot = report["ar1"]["block-bootstrap"]["ert"]
        report["targets"]["AR(1) bootstrap ERT within 25%"] = (
            boot is not None and abs(boot / config.target_ert - 1) <= 0.25
        )
    if "sticky" in report:
        boot = report["sticky"]["block-bootstrap"]["ert"]
        report["targets"]["bursty categorical bootstrap ERT within 25%"] = (
            boot is not None and abs(boot / config.target_ert - 1) <= 0.25
        )
    report["seconds"] = time.perf_counter() - started
    print_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"drift-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {path} ({report['seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
