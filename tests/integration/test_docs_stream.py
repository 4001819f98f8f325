"""The docs stream through the standard worker: embeddings, labels, the long-text policies.

Real broker, real Redis, a worker subprocess scoring `docs.requests`. Every document ends as one
result or one dead letter; embeddings equal a direct run of the model (tokenize, run, pool);
a long text is chunked (several windows pooled) or truncated (flagged) as asked.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.assembly import load_stream_model
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.kafka.ranges import whole_partitions
from pipeline.replay.run import replay
from pipeline.stack.worker_process import WorkerProcess
from pipeline.streams.docs.corpus import man_page_texts, wordnet_glosses
from pipeline.streams.docs.tokens import text_problem
from tests.integration.helpers import read_all, values

pytestmark = pytest.mark.integration


def direct_embeddings(settings: Settings, documents: list[dict]) -> dict[str, np.ndarray]:
    """Tokenize and run the model one document at a time, chunks pooled by token counts."""
    plugin = get_plugin("docs")
    model = load_stream_model(settings, plugin)
    tokenize = plugin.preprocessor(model.manifest, model.directory)
    out = {}
    for document in documents:
        inputs = tokenize([document])
        rows = [model.predict(inputs.matrix[r : r + 1, : inputs.lengths[r]])[0]
                for r in range(len(inputs.matrix))]
        pooled = np.average(np.stack(rows), axis=0, weights=inputs.lengths)
        out[document["document_id"]] = pooled / np.linalg.norm(pooled)
    return out


def test_documents_get_embeddings_labels_and_the_long_text_policy(
    settings: Settings, env: dict[str, str]
) -> None:
    topics = get_plugin("docs").topics(settings.topic_namespace)
    ensure_topics(settings.kafka_bootstrap, ["docs"], 4, 1, settings.topic_namespace)
    glosses = wordnet_glosses()[1000:1030]
    (_, page), = man_page_texts(1, min_chars=6000)
    long_text = page[:6000]  # about 1,500 tokens: several windows, under the chunk limit
    good = [{"document_id": g.id, "text": g.text, "job_id": "j1"} for g in glosses]
    good += [
        {"document_id": "long-chunked", "text": long_text, "job_id": "j1"},
        {"document_id": "long-truncated", "text": long_text, "job_id": "j1",
         "long_policy": "truncate"},
    ]
    bad = [
        {"document_id": "blank", "text": " \n\t ", "job_id": "j1"},
        {"document_id": "binary", "text": "\x00\x01\x02PK\x03\x04", "job_id": "j1"},
        {"document_id": "policy", "text": "fine text", "long_policy": "squash", "job_id": "j1"},
    ]
    worker = WorkerProcess(env, "docs").start()
    try:
        with RequestProducer(settings, topics) as producer:
            for document in good + bad:
                producer.send(
                    {**document, "request_id": f"j1/{document['document_id']}"},
                    headers={"job": "j1"},
                )
        results = values(read_all(settings, topics.results, expected=len(good)))
        dead = read_all(settings, topics.dlq, expected=len(bad))
    finally:
        worker.stop()

    by_id = {r["document_id"]: r for r in results}
    assert sorted(by_id) == sorted(d["document_id"] for d in good) and len(results) == len(good)
    expected = direct_embeddings(settings, good)
    manifest = load_stream_model(settings, get_plugin("docs")).manifest
    labels = set(manifest.sections["head"]["labels"])
    for document_id, result in by_id.items():
        embedding = np.asarray(result["embedding"], dtype=np.float64)
        assert embedding.shape == (384,)
        assert np.abs(embedding - expected[document_id]).max() < 1e-4, document_id
        assert result["label"] in labels and result["top_labels"][0] == result["label"]
        assert result["top_scores"] == sorted(result["top_scores"], reverse=True)
        assert result["job_id"] == "j1" and result["key"] == document_id
    chunked, truncated = by_id["long-chunked"], by_id["long-truncated"]
    assert chunked["chunks"] > 1 and not chunked["truncated"]
    assert truncated["chunks"] == 1 and truncated["truncated"] and truncated["tokens"] == 256
    assert chunked["tokens"] > truncated["tokens"]
    assert all(by_id[g.id]["chunks"] == 1 and not by_id[g.id]["truncated"] for g in glosses)
    # the head was trained on these categories: most short glosses get their own label
    right = sum(by_id[g.id]["label"] == g.label for g in glosses)
    assert right >= len(glosses) // 3

    reasons = {d.headers["request_id"].decode(): d.headers["dlq.detail"].decode() for d in dead}
    assert reasons == {
        "j1/blank": text_problem(" \n\t "),
        "j1/binary": text_problem("\x00\x01\x02PK\x03\x04"),
        "j1/policy": "long_policy: 'squash' is not one of chunk, truncate",
    }
    assert all(d.headers["job"] == b"j1" for d in dead)

    # replay (issue 12) works for this stream too: same inputs, same embeddings and labels
    report = replay(settings, "docs", offsets=whole_partitions(settings.kafka_bootstrap,
                                                               topics.requests))
    n = len(good)
    assert report["counts"]["matched"] == n and report["counts"]["data_hash_equal"] == n
    assert report["counts"]["dead_lettered_on_replay"] == len(bad)
    assert report["agreement"]["label"]["identical"] == n
    assert report["agreement"]["embedding"]["differing"] == 0
    assert report["agree"] is True
