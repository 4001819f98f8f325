"""Cascade vs large-only on the same held-out events (issue 13): cost per event, decision
agreement, ROC AUC, deferral.

The band is calibrated on the first half of the large model's held-out transactions
(pipeline/tiers/calibrate.py); everything reported is measured on the second half, batched at
256 rows: cost in the manifests' units (CPU-seconds per row at batch 256, measured by
models/build_fraud.py) and, measured here in the same run, CPU seconds of the real routing code
(`TierRouter.route`: small model on every row, the band's rows in one more call) against one
large-model call per batch. No Kafka. Run: `python -m bench.tiers_cascade [--small V] [--json F]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import REPO_ROOT

BATCH = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tiers_cascade", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    parser.add_argument("--small", default="1.0.0-small.1")
    parser.add_argument("--large", default="1.0.0")
    parser.add_argument("--target", type=float, default=0.995)
    parser.add_argument("--max-auc-drop", type=float, default=0.005)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median kept)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.core.registry import get_plugin
    from pipeline.models.runtime import load_model
    from pipeline.tiers.calibrate import calibrate, heldout
    from pipeline.tiers.cascade import TierRouter
    from pipeline.tiers.costs import units_per_row
    from pipeline.tiers.policy import Cascade, RoutingPolicy

    plugin = get_plugin("fraud")
    small = load_model(args.models_dir / "fraud" / args.small)
    large = load_model(args.models_dir / "fraud" / args.large)
    x, y = heldout(large.manifest, plugin)
    cal = calibrate(
        small, large, args.target, units_per_row(small.manifest), units_per_row(large.manifest),
        data=(x, y), max_auc_drop=args.max_auc_drop,
    )  # fmt: skip
    bands = tuple(tuple(b) for b in cal["bands"])
    cascade_spec = Cascade(args.small, args.large, bands)  # type: ignore[arg-type]
    policy = RoutingPolicy(args.large, cascade_spec, digest="bench")

    class Fixed:
        def current(self) -> RoutingPolicy:
            return policy

    models = {args.small: small, args.large: large}
    router = TierRouter(large, models.__getitem__, plugin.head, lambda m, rows: m.predict(rows))
    router.watcher = Fixed()  # type: ignore[assignment]
    evaluation = x[len(y) // 2 :]
    batches = [evaluation[i : i + BATCH] for i in range(0, len(evaluation), BATCH)]

    large_head = plugin.head(large.manifest)

    def large_only() -> None:  # one call and the head per batch, as the scorer without tiers
        for b in batches:
            large_head(large.predict(b))

    def cascade() -> None:
        for b in batches:
            router.route(b)

    timings: dict[str, list[float]] = {"large_only": [], "cascade": []}
    for _ in range(args.repeats):  # interleaved, so that load from other work hits both
        for name, fn in (("large_only", large_only), ("cascade", cascade)):
            started = time.process_time()
            fn()
            timings[name].append(time.process_time() - started)
    cpu = {k: float(np.median(v)) for k, v in timings.items()}
    ev = cal["evaluation"]
    return {
        "events": len(evaluation),
        "batch_size": BATCH,
        "small": args.small,
        "large": args.large,
        "bands": cal["bands"],
        "target_agreement": args.target,
        "agreement": ev["agreement"],
        "deferral": ev["deferral"],
        "roc_auc_large": ev["roc_auc_large"],
        "roc_auc_cascade": ev["roc_auc_cascade"],
        "roc_auc_delta": ev["roc_auc_delta"],
        "pr_auc_large": ev["pr_auc_large"],
        "pr_auc_cascade": ev["pr_auc_cascade"],
        "cost_units_per_event": {
            "large_only": ev["cost_units_per_event_large"],
            "cascade": ev["cost_units_per_event_cascade"],
        },
        "cost_ratio_units": ev["cost_ratio"],
        "cpu_seconds_per_event_measured": {
            k: float(f"{v / len(evaluation):.4g}") for k, v in cpu.items()
        },
        "cost_ratio_measured_cpu": round(cpu["cascade"] / cpu["large_only"], 4),
        "targets": {
            "cost_ratio_le_0.5": ev["cost_ratio"] <= 0.5
            and cpu["cascade"] <= 0.5 * cpu["large_only"],
            "agreement_ge_target": ev["agreement"] >= args.target,
            "auc_within_0.005": ev["roc_auc_delta"] >= -0.005,
        },
        "calibration_half": cal["calibration"],
    }


if __name__ == "__main__":
    sys.exit(main())
