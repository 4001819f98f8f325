"""Precompute the shipped KS calibration (pipeline/drift/calibrations/) for a reference size.

    python -m bench.drift.calibrate --n-ref 5000 --rows 120000000 --workers 2

One null curve per (reference size, windows, K, alert rules) serves every feature count and
every target ERT (see pipeline.drift.calibration). Parts are seeded by index, so the result
does not depend on how many workers ran them.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline.drift.calibration import SHIPPED_DIR, ks_null_curve, ks_part_rows
from pipeline.drift.config import DriftConfig


def _run(n_ref: int, parts: range) -> dict:
    return ks_null_curve(DriftConfig(), n_ref, parts).to_json()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-ref", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=120_000_000, help="feature-rows to simulate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR)
    args = parser.parse_args(argv)
    from pipeline.drift.calibration import NullCurve

    parts = -(-args.rows // ks_part_rows(DriftConfig()))
    chunks = [range(i, parts, args.workers) for i in range(args.workers)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        curves = [
            NullCurve.from_json(c) for c in pool.map(_run, [args.n_ref] * len(chunks), chunks)
        ]
    curve = curves[0]
    for other in curves[1:]:
        curve = curve.merged(other)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{curve.name}.json"
    path.write_text(json.dumps(curve.to_json(), indent=None) + "\n")
    wall = time.perf_counter() - started
    print(f"{path}: {curve.rows:,} rows, {curve.seconds:.0f} cpu-s, {wall:.0f} s wall")
    for d in (9, 10, 11, 12, 20):
        print(f"  d={d}: threshold {curve.threshold_for(d * DriftConfig().target_ert):.4f}")


if __name__ == "__main__":
    main()
