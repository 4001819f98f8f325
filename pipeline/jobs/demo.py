"""`inferstream jobs demo`: a mixed-length job of Debian texts (WordNet glosses and man pages)
through a docs worker it starts, with progress and a summary: labels and nearest neighbours."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.config import Settings


def demo_documents(count: int) -> list[dict]:
    from pipeline.streams.docs.corpus import ensure_corpus, man_page_texts, wordnet_glosses

    ensure_corpus()
    pages = man_page_texts(max(1, count // 5))  # long documents: a fifth
    glosses = wordnet_glosses()[: max(0, count - len(pages))]
    docs = [{"id": f"man/{pid}", "text": text} for pid, text in pages]
    docs += [{"id": f"wordnet/{g.id}", "text": g.text} for g in glosses]
    return docs[:count]


def run_demo(cfg: Settings, count: int) -> int:
    from pipeline.cli.demo_cmd import ensure_stack
    from pipeline.cli.jobs_cmd import _follow_until_done
    from pipeline.jobs.inputs import read_inputs
    from pipeline.jobs.operations import job_store, write_results
    from pipeline.jobs.spec import new_name
    from pipeline.jobs.submit import job_plugin, prepare_spec, send
    from pipeline.kafka.admin import ensure_topics
    from pipeline.stack.worker_process import WorkerProcess

    ensure_stack(cfg, print)
    ensure_topics(cfg.kafka_bootstrap, ["docs"], cfg.topic_partitions, cfg.topic_replication,
                  cfg.topic_namespace)  # fmt: skip
    env = dict(os.environ)
    env["INFERSTREAM_APP_ID"] = f"{cfg.app_id}-docs-demo"  # docs in a group of their own
    worker = WorkerProcess(env, "docs").start(timeout=180)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "demo.jsonl"
            docs = demo_documents(count)
            path.write_text("".join(json.dumps(d) + "\n" for d in docs))
            plugin = job_plugin("docs")
            store = job_store(cfg)
            inputs = read_inputs(path)
            spec = prepare_spec(cfg, plugin, inputs, f"demo-{new_name()}", None, None)
            submitted = send(cfg, store, plugin, inputs, spec, resumed=False)
            print(f"job {spec.job_id}: {spec.total} documents, estimated "
                  f"{spec.estimated_cost:.2f} model-s")  # fmt: skip
            code = _follow_until_done(store, spec.job_id)
            out = Path(tmp) / "results.jsonl"
            write_results(cfg, store, submitted.spec.job_id, out)
            summary(out)
            return code
    finally:
        worker.stop()


def summary(results: Path) -> None:
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    if not rows:
        return
    labels = Counter(r["label"] for r in rows)
    print("labels:", ", ".join(f"{label} {n}" for label, n in labels.most_common(8)))
    vectors = np.array([r["embedding"] for r in rows], dtype=np.float32)
    sims = vectors @ vectors.T  # embeddings are L2-normalised: dot = cosine
    np.fill_diagonal(sims, -1.0)
    for i in range(min(3, len(rows))):
        j = int(np.argmax(sims[i]))
        print(f"  {rows[i]['document_id']} ~ {rows[j]['document_id']} (cosine {sims[i, j]:.2f})")
