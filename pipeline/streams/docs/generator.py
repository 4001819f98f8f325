"""Synthetic document requests for `produce --stream docs` and the demo: real Debian text.

Short WordNet glosses mixed with longer man-page sections (pipeline/streams/docs/corpus.py), in
a seeded order, so a run exercises both the token budget and the long-document policy.
"""

from __future__ import annotations

import random
from typing import Any

from pipeline.streams.docs.corpus import ensure_corpus, man_page_texts, wordnet_glosses

MAN_PAGES = 200


class DocumentGenerator:
    def __init__(self, seed: int, long_share: float) -> None:
        ensure_corpus()
        self.random = random.Random(seed)
        self.long_share = long_share
        self.glosses = wordnet_glosses()
        self.pages = man_page_texts(MAN_PAGES)
        self.produced = 0

    def generate(self, n: int) -> list[dict[str, Any]]:
        records = []
        for _ in range(n):
            self.produced += 1
            if self.pages and self.random.random() < self.long_share:
                page_id, text = self.random.choice(self.pages)
                document_id = f"man/{page_id}#{self.produced}"
            else:
                gloss = self.random.choice(self.glosses)
                document_id, text = f"wordnet/{gloss.id}#{self.produced}", gloss.text
            records.append({"document_id": document_id, "text": text, "job_id": None})
        return records
