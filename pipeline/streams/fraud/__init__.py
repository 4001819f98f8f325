"""Fraud scoring stream: synthetic transactions and the versioned request -> features function."""

from pipeline.streams.fraud.features import (
    FEATURE_NAMES,
    PREPROCESSING_VERSION,
    FeatureBatch,
    build_features,
)
from pipeline.streams.fraud.generator import DriftSpec, GeneratedBatch, TransactionGenerator

__all__ = [
    "FEATURE_NAMES",
    "PREPROCESSING_VERSION",
    "DriftSpec",
    "FeatureBatch",
    "GeneratedBatch",
    "TransactionGenerator",
    "build_features",
]
