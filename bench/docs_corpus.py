"""The docs bench's documents: distinct WordNet glosses with a share of man-page excerpts.

Seeded, so the same flags give the same texts in every run; request ids carry the run's prefix,
so the request-id rule and the result cache never see a document of an earlier run. A man-page
excerpt is its page's first `long_chars` characters (cut at a space), several token windows
long, so the mix exercises both the token budget and chunking; `long_chars=0` takes whole pages
(up to MAX_CHUNKS windows each: minutes of model time per hundred of them on these cores).
"""

from __future__ import annotations

import random
from typing import Any

from pipeline.streams.docs.corpus import ensure_corpus, man_page_texts, wordnet_glosses

MAN_PAGES = 200  # the generator's (pipeline/streams/docs/generator.py)


def excerpt(text: str, chars: int) -> str:
    """The first `chars` characters of `text`, cut back to the last space (0: all of it)."""
    if chars <= 0 or len(text) <= chars:
        return text
    cut = text.rfind(" ", 0, chars)
    return text[: cut if cut > chars // 2 else chars]


def bench_documents(
    n: int, long_share: float, long_chars: int, prefix: str, seed: int = 20250101
) -> list[dict[str, Any]]:
    """`n` docs_request records: distinct glosses in a seeded order, about `long_share` of them
    replaced by man-page excerpts (at seeded positions)."""
    ensure_corpus()
    rng = random.Random(seed)
    glosses = wordnet_glosses()
    pages = man_page_texts(MAN_PAGES) if long_share > 0 else []
    picked = rng.sample(range(len(glosses)), min(n, len(glosses)))
    records: list[dict[str, Any]] = []
    for i in range(n):
        if pages and rng.random() < long_share:
            page_id, text = pages[rng.randrange(len(pages))]
            document_id, text = f"man/{page_id}#{i}", excerpt(text, long_chars)
        else:
            gloss = glosses[picked[i % len(picked)]]
            document_id, text = f"wordnet/{gloss.id}#{i}", gloss.text
        records.append(
            {
                "request_id": f"{prefix}{i}",
                "job_id": None,
                "document_id": document_id,
                "text": text,
                "long_policy": None,
                "tenant": None,
                "metadata": None,
            }
        )
    return records
