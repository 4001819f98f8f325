"""Build the fraud model: seeded synthetic data -> features -> gradient boosting -> ONNX + manifest.

    .venv/bin/python models/build_fraud.py [--version 1.0.0] [--rows 300000] [--seed 20250106]
    .venv/bin/python models/build_fraud.py --kind small --version 1.0.0-small.1
    .venv/bin/python models/build_fraud.py --kind linear --version 1.0.0-linear.1
    .venv/bin/python models/build_fraud.py --version 1.0.0-candidate.1 --seed 7
    .venv/bin/python models/build_fraud.py --measure-cost 1.0.0   # an already built version

`--kind large` (the default) is gradient boosting; `--kind small` 30 shallow boosted trees and
`--kind linear` a logistic regression on the same features: a fraction of the cost per row, the
first tier of a cascade (pipeline/tiers). Every build records `cost` (mean CPU-seconds per row
at a reference batch of 256 rows, one ONNX Runtime thread, on this machine, and `units_per_row`
at `--price` units per CPU-second) and held-out quality (`metrics`). `--measure-cost` measures
a version built before `cost` existed (1.0.0, 0.9.0) without rebuilding it, into
fraud/costs.json.

Writes models/fraud/<version>/{model.onnx, manifest.json, reference.npy}. Everything is derived
from the seed, so a rebuild with the same arguments and library versions gives the same model.

Data: the first (1 - test_share) of the generated stream, in event-time order, trains the model and
the rest is held out, so that metrics and thresholds come from transactions later than every
training transaction (as they would in production).

Thresholds, chosen on the held-out set (see choose_thresholds):
- decline: the lowest score at which the transactions scoring at least that much are fraud with
  precision >= DECLINE_PRECISION (declining a good customer is costly, so be sure);
- review: the score that maximises F2 (recall counts twice as much as precision: an analyst
  looking at a few extra good transactions is cheaper than a missed fraud), kept below decline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.streams.fraud.features import FEATURE_NAMES, PREPROCESSING_VERSION, build_features
from pipeline.streams.fraud.generator import TransactionGenerator

MODELS_DIR = Path(__file__).resolve().parent
MODEL_NAME = "fraud"
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
DECLINE_PRECISION = 0.90
REVIEW_F_BETA = 2.0
MAX_ONNX_DIFF = 1e-4
# Opsets every onnxruntime the project accepts (>= 1.18) runs; ai.onnx.ml 3 has tree ensembles
# with double thresholds.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
COST_BATCH = 256  # the reference batch size of `cost.seconds_per_row`
COST_FILE = "costs.json"  # measured costs of versions whose manifest has no `cost`
DEFAULT_PRICE = 1e6  # cost units per CPU-second: one unit is one CPU-microsecond


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.measure_cost:
        return _measure_existing(args)
    started = time.perf_counter()

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score, roc_auc_score

    generator = TransactionGenerator(seed=args.seed, fraud_share=args.fraud_share)
    batch = generator.generate(args.rows)
    features = build_features(batch.records)
    if features.errors:  # the generator only makes valid records; anything else is a bug
        raise SystemExit(f"generator produced invalid records, first: {features.errors[0]}")
    # Integer labels: skl2onnx writes class labels as ints and rejects bools.
    x, y = features.matrix, batch.labels[features.valid_index].astype(np.int64)
    cut = int(len(y) * (1.0 - args.test_share))
    x_train, y_train, x_test, y_test = x[:cut], y[:cut], x[cut:], y[cut:]
    print(f"data: {len(y_train)} train / {len(y_test)} test rows, fraud share {y.mean():.4f}")
    if args.shuffle_labels:  # a deliberately bad candidate (canary tests): labels carry no signal
        y_train = np.random.default_rng(args.seed).permutation(y_train)

    model = (
        _small_model(args)
        if args.kind != "large"
        else HistGradientBoostingClassifier(
            learning_rate=0.08,
            max_iter=400,
            max_leaf_nodes=31,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=20,
            random_state=args.seed,
        )
    )
    model.fit(x_train, y_train)
    fraud_column = int(np.flatnonzero(model.classes_ == 1)[0])
    sk_scores = model.predict_proba(x_test)[:, fraud_column]
    roc_auc = float(roc_auc_score(y_test, sk_scores))
    pr_auc = float(average_precision_score(y_test, sk_scores))
    size = "logistic regression" if args.kind == "linear" else f"{model.n_iter_} trees"
    print(f"model: {size}, held-out ROC AUC {roc_auc:.4f}, PR AUC {pr_auc:.4f}")

    onnx_bytes = _to_onnx(model, args.version)
    onnx_scores = _onnx_scores(onnx_bytes, x_test, fraud_column)
    max_diff = float(np.max(np.abs(onnx_scores - sk_scores))) if len(y_test) else 0.0
    if max_diff >= MAX_ONNX_DIFF:
        raise SystemExit(f"ONNX and scikit-learn disagree by {max_diff:.2e} (>= {MAX_ONNX_DIFF})")
    print(f"onnx: max |onnx - sklearn| on held-out = {max_diff:.2e}")

    thresholds, at_thresholds = choose_thresholds(y_test, sk_scores)
    print(f"thresholds: {thresholds} -> {at_thresholds}")

    rng = np.random.default_rng(args.seed)
    n_reference = min(args.reference_rows, len(x_test))
    reference_rows = np.sort(rng.choice(len(x_test), size=n_reference, replace=False))
    reference = np.ascontiguousarray(x_test[reference_rows], dtype="<f4")
    reference_scores = sk_scores[reference_rows]

    out_dir = args.out_dir / MODEL_NAME / args.version
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(onnx_bytes)
    np.save(out_dir / "reference.npy", reference)

    import onnx
    import skl2onnx
    import sklearn

    cost = measure_cost(onnx_bytes, x_test, args.price)
    print(f"cost: {cost['seconds_per_row']:.3e} CPU-s per row at batch {COST_BATCH}")
    manifest = {
        "name": MODEL_NAME,
        "version": args.version,
        "sha256": _sha256(out_dir / "model.onnx"),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "output": {
            "kind": "class_probabilities",
            "shape": ["N", 2],
            "positive_column": fraud_column,
            "positive_label": "fraud",
        },
        "feature_names": list(FEATURE_NAMES),
        "preprocessing_version": PREPROCESSING_VERSION,
        "thresholds": thresholds,
        "metrics": {
            "roc_auc": round(roc_auc, 6),
            "pr_auc": round(pr_auc, 6),
            "rows_train": len(y_train),
            "rows_test": len(y_test),
            "fraud_share": round(float(y.mean()), 6),
            "fraud_share_test": round(float(y_test.mean()), 6),
            "at_thresholds": at_thresholds,
            "max_abs_diff_onnx_vs_sklearn": max_diff,
        },
        "training": {
            "seed": args.seed,
            "generator": generator.params(),
            "split": f"first {1 - args.test_share:.0%} of the stream trains, the rest is held out",
            **_estimator_section(model, args),
            "opset_import": {
                (o.domain or "ai.onnx"): o.version
                for o in onnx.load_from_string(onnx_bytes).opset_import
            },
            "versions": {
                "numpy": np.__version__,
                "scikit-learn": sklearn.__version__,
                "skl2onnx": skl2onnx.__version__,
                "onnx": onnx.__version__,
            },
        },
        "reference": {
            "file": "reference.npy",
            "rows": int(n_reference),
            "sha256": _sha256(out_dir / "reference.npy"),
            "source": "random sample of the held-out rows (no drift)",
            # the sampled rows keep the stream's order: drift calibrates by block bootstrap
            "order": "arrival",
        },
        # A few reference rows with scikit-learn's probability, so that tests and operators can
        # check the ONNX model (on any execution provider) against the trained estimator.
        "expected": _expected_rows(reference_scores),
        "cost": cost,
        "created_by": "models/build_fraud.py",
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
    print(f"wrote {out_dir}: {sizes} in {time.perf_counter() - started:.1f} s")
    return 0


def _small_model(args: argparse.Namespace) -> object:
    """A cheap tier. `small`: 30 boosted trees of 8 leaves (no early stopping), about a quarter
    of the large model's cost per row at the same ROC AUC; `linear`: standardised features ->
    logistic regression (12 weights and a bias), a few percent of the cost, a lower AUC."""
    if args.kind == "small":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            learning_rate=0.2, max_iter=30, max_leaf_nodes=8, l2_regularization=1.0,
            early_stopping=False, random_state=args.seed,
        )  # fmt: skip
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=args.seed)
    )


def _estimator_section(model: object, args: argparse.Namespace) -> dict[str, object]:
    if args.kind != "linear":  # the keys (and order) 1.0.0 was built with, then `kind`
        section: dict[str, object] = {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "estimator_params": _json_params(model.get_params()),  # type: ignore[attr-defined]
            "n_trees": int(model.n_iter_),  # type: ignore[attr-defined]
        }
    else:
        section = {
            "estimator": "sklearn.pipeline(StandardScaler, LogisticRegression)",
            "estimator_params": _json_params(model[-1].get_params()),  # type: ignore[index]
        }
    section["kind"] = args.kind
    if args.shuffle_labels:
        section["labels"] = "shuffled (a deliberately bad model)"
    return section


def measure_cost(
    onnx_bytes: bytes, rows: np.ndarray, price: float, batch: int = COST_BATCH, repeats: int = 0
) -> dict[str, object]:
    """Mean CPU-seconds per row of one ONNX Runtime session (one thread, spinning off, as
    pipeline.models.runtime opens it) over batches of `batch` rows, and units at `price`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if len(rows) < batch:
        rows = np.tile(rows, (-(-batch // max(len(rows), 1)), 1))
    batches = [rows[i : i + batch] for i in range(0, len(rows) - batch + 1, batch)]
    for b in batches[:8]:  # warm-up
        session.run([OUTPUT_NAME], {INPUT_NAME: b})
    picked = batches[: repeats or len(batches)]
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for b in picked:
        session.run([OUTPUT_NAME], {INPUT_NAME: b})
    cpu = time.process_time() - cpu_started
    wall = time.perf_counter() - wall_started
    n = len(picked) * batch
    seconds = cpu / n
    return {
        "seconds_per_row": float(f"{seconds:.4g}"),
        "units_per_row": float(f"{seconds * price:.4g}"),
        "price_units_per_cpu_second": price,
        "wall_seconds_per_row": float(f"{wall / n:.4g}"),
        "batch_size": batch,
        "rows_measured": n,
        "measured_on": f"{platform.node()} ({os.cpu_count()} CPUs), onnxruntime "
        f"{onnxruntime.__version__}, CPUExecutionProvider, 1 thread",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _measure_existing(args: argparse.Namespace) -> int:
    """`--measure-cost V`: the cost of fraud/V (on its reference rows) into fraud/costs.json."""
    model_dir = args.out_dir / MODEL_NAME / args.measure_cost
    manifest = json.loads((model_dir / "manifest.json").read_text())
    onnx_bytes = (model_dir / "model.onnx").read_bytes()
    if hashlib.sha256(onnx_bytes).hexdigest() != manifest["sha256"]:
        raise SystemExit(f"{model_dir}/model.onnx does not match its manifest sha256")
    reference = np.load(model_dir / manifest["reference"]["file"], allow_pickle=False)
    cost = measure_cost(onnx_bytes, np.tile(reference, (4, 1)), args.price)
    path = args.out_dir / MODEL_NAME / COST_FILE
    costs = json.loads(path.read_text()) if path.is_file() else {}
    costs[args.measure_cost] = {"sha256": manifest["sha256"], **cost}
    path.write_text(json.dumps(dict(sorted(costs.items())), indent=2) + "\n")
    print(f"{args.measure_cost}: {cost['seconds_per_row']:.3e} CPU-s per row -> {path}")
    return 0


def choose_thresholds(
    y_true: np.ndarray, scores: np.ndarray
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """`review` and `decline` score thresholds (see the module doc) and how they do on the data."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, cut = precision_recall_curve(y_true, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    # precision is for "score >= cut"; the lowest such cut keeps the most recall.
    good = np.flatnonzero(precision >= DECLINE_PRECISION)
    decline = float(cut[good[0]]) if len(good) else float(cut[-1])
    beta2 = REVIEW_F_BETA**2
    f_beta = (1 + beta2) * precision * recall / np.maximum(beta2 * precision + recall, 1e-12)
    below = cut < decline
    review = float(cut[below][np.argmax(f_beta[below])]) if below.any() else decline
    thresholds = {"review": round(review, 6), "decline": round(decline, 6)}

    def at(threshold: float) -> dict[str, float]:
        flagged = scores >= threshold
        hits = int((flagged & (y_true == 1)).sum())
        return {
            "precision": round(hits / max(int(flagged.sum()), 1), 4),
            "recall": round(hits / max(int(y_true.sum()), 1), 4),
            "flagged_share": round(float(flagged.mean()), 5),
        }

    return thresholds, {name: at(value) for name, value in thresholds.items()}


def _patch_skl2onnx_leaf_flags() -> None:
    """Work around skl2onnx 1.20 + onnx 1.23: HistGradientBoosting leaves get a Python bool.

    skl2onnx passes `nodes_missing_value_tracks_true=False` for leaf nodes, and onnx >= 1.23
    (protobuf 7) refuses bools in an ints attribute ("Expected an int, got a boolean"). The flag
    only matters for NaN inputs, which build_features never produces; casting it to int keeps
    the converter's meaning. Idempotent; a no-op on versions without the helper.
    """
    import functools

    from skl2onnx.common import tree_ensemble

    add_node = getattr(tree_ensemble, "add_node", None)
    if add_node is None or getattr(add_node, "_inferstream_patched", False):
        return

    @functools.wraps(add_node)
    def add_node_with_int_flag(*args: object, **kwargs: object) -> object:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(
                kwargs["nodes_missing_value_tracks_true"]  # type: ignore[call-overload]
            )
        return add_node(*args, **kwargs)

    add_node_with_int_flag._inferstream_patched = True  # type: ignore[attr-defined]
    tree_ensemble.add_node = add_node_with_int_flag


def _to_onnx(model: object, version: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    _patch_skl2onnx_leaf_flags()
    onnx_model = convert_sklearn(
        model,
        name=f"{MODEL_NAME}-{version}",
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        # zipmap off: probabilities come out as a float tensor [N, 2], not a list of dicts.
        options={id(getattr(model, "steps", [(None, model)])[-1][1]): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    outputs = [o.name for o in onnx_model.graph.output]
    if OUTPUT_NAME not in outputs:
        raise SystemExit(f"converted model has outputs {outputs}, expected {OUTPUT_NAME!r}")
    metadata = {
        "inferstream.name": MODEL_NAME,
        "inferstream.version": version,
        "inferstream.preprocessing_version": PREPROCESSING_VERSION,
        "inferstream.feature_names": ",".join(FEATURE_NAMES),
    }
    for key, value in metadata.items():
        prop = onnx_model.metadata_props.add()
        prop.key, prop.value = key, value
    return onnx_model.SerializeToString()


def _onnx_scores(onnx_bytes: bytes, x: np.ndarray, fraud_column: int) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x)})
    return probabilities[:, fraud_column].astype(np.float64)


def _expected_rows(reference_scores: np.ndarray) -> dict[str, list]:
    # Rows spread over the score range, the highest scores included, so both tails are checked.
    order = np.argsort(reference_scores, kind="stable")
    picks = sorted({int(order[int(q * (len(order) - 1))]) for q in (0, 0.25, 0.5, 0.75, 0.95)})
    picks = sorted(set(picks) | {int(i) for i in order[-3:]})
    return {
        "reference_rows": picks,
        "fraud_probability": [float(reference_scores[i]) for i in picks],
        "tolerance": MAX_ONNX_DIFF,
    }


def _json_params(params: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in params.items() if v is None or isinstance(v, bool | int | float | str)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="1.0.0", help="semantic version (default 1.0.0)")
    parser.add_argument(
        "--kind", choices=("large", "small", "linear"), default="large",
        help="large: gradient boosting (default); small: 30 shallow trees; linear: logistic "
        "regression",
    )  # fmt: skip
    parser.add_argument(
        "--price", type=float, default=DEFAULT_PRICE,
        help=f"cost units per CPU-second (default {DEFAULT_PRICE:g}: a unit is a CPU-microsecond)",
    )  # fmt: skip
    parser.add_argument(
        "--shuffle-labels", action="store_true",
        help="train on shuffled labels: a deliberately bad candidate (canary tests)",
    )  # fmt: skip
    parser.add_argument(
        "--measure-cost", metavar="VERSION",
        help="measure the cost of an already built version into fraud/costs.json; build nothing",
    )  # fmt: skip
    parser.add_argument("--rows", type=int, default=300_000, help="records to generate")
    parser.add_argument("--seed", type=int, default=20250106, help="generator and model seed")
    parser.add_argument("--fraud-share", type=float, default=0.02)
    parser.add_argument("--test-share", type=float, default=0.25, help="held-out share")
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument(
        "--out-dir", type=Path, default=MODELS_DIR, help="models root (writes <root>/fraud/<v>)"
    )
    args = parser.parse_args(argv)
    if not SEMVER.match(args.version):
        parser.error(f"--version {args.version!r} is not a semantic version like 1.0.0")
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    if not 0.05 <= args.test_share <= 0.5:
        parser.error("--test-share must be in [0.05, 0.5]")
    return args


if __name__ == "__main__":
    sys.exit(main())
