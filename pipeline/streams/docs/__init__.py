"""The docs stream: documents -> a sentence embedding and a label, in jobs of many documents.

Everything document-specific lives here: tokenization and the long-document policy
(`tokens.py`), the embedding + classifier head (`head.py`), the Debian corpora the model is
trained and demonstrated on (`corpus.py`) and a generator of real-text requests
(`generator.py`). Jobs (`inferstream jobs`, pipeline/jobs/) group its requests by `job_id`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core.plugin import DriftInjection, GeneratorOption, RequestGenerator, StreamPlugin
from pipeline.streams.docs.head import document_head
from pipeline.streams.docs.tokens import (
    PREPROCESSING_VERSION,
    DocumentTokenizer,
    estimated_tokens,
)

LONG_SHARE = GeneratorOption(
    name="long-share",
    help="share of long documents (man pages) among the generated ones",
    default=0.1,
    low=0.0,
    high=1.0,
)


def make_generator(
    seed: int, drift: DriftInjection | None, options: Mapping[str, float]
) -> RequestGenerator:
    from pipeline.streams.docs.generator import DocumentGenerator

    if drift is not None:
        raise ValueError("the docs stream's generator has no drift injection")
    share = LONG_SHARE.check(options.get(LONG_SHARE.dest, LONG_SHARE.default))
    return DocumentGenerator(seed, share)


PLUGIN = StreamPlugin(
    name="docs",
    request_schema="docs_request",
    result_schema="docs_result",
    key_field="document_id",
    model_name="docs",
    preprocessing_version=PREPROCESSING_VERSION,
    bind_preprocess=DocumentTokenizer,
    head=document_head,
    generator=make_generator,
    generator_options=(LONG_SHARE,),
    passed_headers=frozenset({"traceparent", "tenant", "job"}),
    job_field="job_id",
    message_cost=estimated_tokens,
    about="documents -> sentence embedding (all-MiniLM-L6-v2) and a WordNet category label",
)

__all__ = ["PLUGIN", "PREPROCESSING_VERSION", "DocumentTokenizer"]
