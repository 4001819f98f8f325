"""A second stream built entirely in the test tree runs through the standard worker command.

The plug-in (tests/integration/toy_stream/), its .avsc files and its ONNX model (built here)
are found through the `inferstream.streams` entry point, as a user's own package would be; no
file of the product names the stream. Results, provenance and dead letters come back for it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer

from pipeline.codec import AvroSerializer, registry_from_settings
from pipeline.config import REPO_ROOT, Settings
from pipeline.core import registry as stream_registry
from tests.integration.helpers import WorkerProcess, read_all, values

pytestmark = pytest.mark.integration

ENTRY_POINTS = "[inferstream.streams]\ntoy = tests.integration.toy_stream:PLUGIN\n"


def clear_registry() -> None:
    stream_registry._sources.cache_clear()
    stream_registry.get_plugin.cache_clear()


@pytest.fixture
def toy_env(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The toy plug-in installed as a distribution's entry point, here and in subprocesses."""
    from tests.integration.toy_stream import model

    site = tmp_path / "site"
    dist = site / "toy_stream_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-stream-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    models = tmp_path / "models"
    model.build(models)
    monkeypatch.syspath_prepend(str(site))
    clear_registry()
    toy = dict(env)
    toy["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO_ROOT), env.get("PYTHONPATH", "")])
    toy["INFERSTREAM_MODELS_DIR"] = str(models)
    for key, value in toy.items():
        if key.startswith("INFERSTREAM_"):
            monkeypatch.setenv(key, value)
    yield toy
    clear_registry()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_a_toy_stream_from_the_test_tree_is_scored_end_to_end(toy_env: dict[str, str]) -> None:
    from tests.integration.toy_stream import features
    from tests.integration.toy_stream.model import probabilities

    settings = Settings.from_env()
    assert "toy" in stream_registry.stream_names()
    topics = stream_registry.stream_topics("toy", settings.topic_namespace)
    cli(toy_env, "topics", "ensure", "--streams", "toy")

    worker = WorkerProcess(toy_env, "toy").start()
    try:
        cli(toy_env, "produce", "toy", "--count", "40", "--seed", "3", "--quiet")
        # two that the worker must dead-letter: a reading out of range, and bytes that are no Avro
        registry = registry_from_settings(settings)
        encode = AvroSerializer(
            registry, registry.catalog.latest("toy_request"), topics.requests  # type: ignore[attr-defined]
        )
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        bad = {"request_id": "toy-bad", "sensor_id": "s", "tenant": None, "reading": 5000.0}
        for value, request_id in ((encode(bad), b"toy-bad"), (b"junk bytes", b"toy-junk")):
            producer.produce(topics.requests, value, b"s", headers=[("request_id", request_id)])
        assert producer.flush(30) == 0
        del producer  # librdkafka's threads go with it

        sent = read_all(settings, topics.requests, expected=42)
        requests = {r.value["request_id"]: r.value for r in sent if r.value is not None}
        results = values(read_all(settings, topics.results, expected=40))
        provenance = values(read_all(settings, topics.provenance, expected=40))
        dead = read_all(settings, topics.dlq, expected=2)
    finally:
        worker.stop()

    assert len(results) == 40 and len(provenance) == 40
    assert {r["request_id"] for r in results} == set(requests) - {"toy-bad"}
    for result in results:
        reading = requests[result["request_id"]]["reading"]
        expected = probabilities(features(np.array([reading])))[0, 1]
        assert result["probability"] == pytest.approx(expected, abs=1e-6)
        assert result["label"] == ("high" if expected >= 0.5 else "low")
        assert result["model_name"] == "toy" and result["key"].startswith("sensor-")
        assert result["tenant"] == "lab"
    assert {r["label"] for r in results} == {"high", "low"}
    for record in provenance:
        reading = requests[record["request_id"]]["reading"]
        row = features(np.array([reading]))[0].astype("<f4").tobytes()
        assert record["data_hash"] == hashlib.sha256(row).hexdigest()
        assert record["preprocessing_version"] == "toy-features/1"
        assert record["model_version"] == "0.1.0" and record["source_topic"] == topics.requests
    reasons = {d.headers["request_id"]: d.headers["dlq.reason"] for d in dead}
    assert reasons == {b"toy-bad": b"invalid-feature", b"toy-junk": b"bad-magic"}
    detail = next(d.headers["dlq.detail"] for d in dead if d.headers["request_id"] == b"toy-bad")
    assert b"reading 5000.0 out of range" in detail


def test_an_unknown_stream_names_the_installed_ones(toy_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "worker", "--streams", "toyy"], env=toy_env,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown stream 'toyy'; known: docs, fraud, toy" in done.stderr
    assert "Traceback" not in done.stderr
