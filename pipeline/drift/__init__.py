"""Streaming drift detection: sliding-window KS / G-tests against a fixed reference sample.

reference = Reference.from_rows(sample, feature_names)
detector = DriftDetector(reference)                 # thresholds for DriftConfig.target_ert
for event in detector.update(batch, offsets, timestamps_ms):
    publish(event.to_avro_dict(stream, model_name, model_version, now_ms))
blob = detector.snapshot()                          # ... DriftDetector.restore(reference, blob)
"""

from pipeline.drift.alerts import (
    AlertEvent,
    AlertState,
    DriftTest,
    FeatureEvidence,
    FeatureStat,
    Severity,
)
from pipeline.drift.calibration import Calibrator, NullCurve
from pipeline.drift.config import DriftConfig
from pipeline.drift.detector import DriftDetector
from pipeline.drift.ks import ks_distance
from pipeline.drift.reference import Reference

__all__ = [
    "AlertEvent",
    "AlertState",
    "Calibrator",
    "DriftConfig",
    "DriftDetector",
    "DriftTest",
    "FeatureEvidence",
    "FeatureStat",
    "NullCurve",
    "Reference",
    "Severity",
    "ks_distance",
]
