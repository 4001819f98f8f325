"""The fraud plug-in's labelled held-out rows of a model version (the contract's `heldout`).

A fraud model is trained on `TransactionGenerator` traffic (scripts/build_fraud.py); its
manifest records the seed, the generator options and how many rows trained and tested. The
held-out rows are regenerated from that: the last `rows_test` transactions of the stream, later
in event time than every training row, with their fraud labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator


def heldout_rows(manifest: Any) -> tuple[np.ndarray, np.ndarray]:
    """(feature matrix, 0/1 labels) of `manifest`'s held-out transactions; ValueError naming
    what the manifest lacks."""
    training, metrics = manifest.training, manifest.metrics
    try:
        seed = int(training["seed"])
        rows_test = int(metrics["rows_test"])
        rows = int(metrics["rows_train"]) + rows_test
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"model {manifest.version}: manifest lacks training.seed / metrics.rows_train/test "
            "to regenerate its held-out data"
        ) from None
    options = training.get("generator") or {}
    fraud_share = options.get("fraud_share")
    generator = (
        TransactionGenerator(seed=seed)
        if fraud_share is None
        else TransactionGenerator(seed=seed, fraud_share=float(fraud_share))
    )
    batch = generator.generate(rows)
    features = build_features(batch.records)
    labels = np.asarray(batch.labels)[features.valid_index].astype(np.int64)
    cut = len(labels) - rows_test
    return features.matrix[cut:], labels[cut:]
