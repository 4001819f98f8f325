"""The fraud stream: card transactions scored per event, in order per card.

Everything fraud-specific lives here: the versioned features (`features.py`), the decision head
(`head.py`), the synthetic transaction generator (`generator.py`), a model's labelled held-out
rows regenerated from it (`heldout.py`) and the plug-in value below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from pipeline.core.plugin import DriftInjection, GeneratorOption, StreamPlugin
from pipeline.streams.fraud.features import (
    DRIFT_EXEMPT_FEATURES,
    FEATURE_NAMES,
    PREPROCESSING_VERSION,
    FeatureBatch,
    build_features,
)
from pipeline.streams.fraud.generator import (
    DRIFTABLE_FIELDS,
    DriftSpec,
    GeneratedBatch,
    TransactionGenerator,
)
from pipeline.streams.fraud.head import decision_head
from pipeline.streams.fraud.heldout import heldout_rows

FRAUD_SHARE = GeneratorOption(
    name="fraud-share",
    help="share of fraudulent transactions the generator makes",
    default=0.02,
    low=0.0,
    high=0.25,
)


class _Records:
    """TransactionGenerator as the plug-in contract's RequestGenerator (records only)."""

    def __init__(self, generator: TransactionGenerator) -> None:
        self.generator = generator

    def generate(self, n: int) -> list[dict[str, Any]]:
        return self.generator.generate(n).records


def make_generator(
    seed: int, drift: DriftInjection | None, options: Mapping[str, float]
) -> _Records:
    fraud_share = FRAUD_SHARE.check(options.get(FRAUD_SHARE.dest, FRAUD_SHARE.default))
    spec = DriftSpec(**asdict(drift)) if drift is not None else None
    return _Records(TransactionGenerator(seed=seed, fraud_share=fraud_share, drift=spec))


PLUGIN = StreamPlugin(
    name="fraud",
    request_schema="fraud_request",
    result_schema="inference_result",
    key_field="card_id",
    model_name="fraud",
    preprocessing_version=PREPROCESSING_VERSION,
    preprocess=build_features,
    head=decision_head,
    drift_exempt=DRIFT_EXEMPT_FEATURES,
    driftable_fields=DRIFTABLE_FIELDS,
    generator=make_generator,
    generator_options=(FRAUD_SHARE,),
    heldout=heldout_rows,
    flagged=lambda result: result.get("decision") != "approve",
    about="card transactions -> fraud probability and approve/review/decline",
)

__all__ = [
    "FEATURE_NAMES",
    "PLUGIN",
    "PREPROCESSING_VERSION",
    "DriftSpec",
    "FeatureBatch",
    "GeneratedBatch",
    "TransactionGenerator",
    "build_features",
]
