"""Drift detection on the real broker: a drifted stream opens an alert, a stationary one none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pipeline.cli.drift_cmd import load_statuses
from pipeline.core.registry import stream_topics
from pipeline.core.topics import drift_alerts_topic
from pipeline.kafka.producer import RequestProducer
from pipeline.stack.worker_process import WorkerProcess
from pipeline.streams.fraud.generator import DriftSpec, TransactionGenerator
from tests.integration.helpers import read_all, values

pytestmark = pytest.mark.integration

ROWS = 4000
AMOUNT_FEATURES = {"log_amount", "log_amount_to_avg_ratio"}  # what a shift of `amount` moves


def wait_until_seen(settings, rows: int, timeout: float = 120) -> None:
    """The detector checkpoints its status (rows seen) to Redis after each batch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = load_statuses(settings.redis_url, settings.topic_namespace)
        if statuses and statuses[0]["rows_seen"] >= rows:
            return
        time.sleep(0.5)
    raise AssertionError(f"the drift detector did not see {rows} rows in {timeout}s")


def run_stream(settings, env, drift: DriftSpec | None) -> list[dict]:
    spec = stream_topics("fraud", settings.topic_namespace)
    records = TransactionGenerator(seed=41, drift=drift).generate(ROWS).records
    worker = WorkerProcess(env, "fraud").start_role("drift")
    try:
        with RequestProducer(settings, spec) as producer:
            producer.send_many(records)
        wait_until_seen(settings, ROWS)
        alerts = read_all(settings, drift_alerts_topic(settings.topic_namespace), idle_timeout=3)
    finally:
        worker.stop()
    return values(alerts)


def test_drifted_stream_opens_an_alert_naming_the_shifted_feature(settings, env):
    alerts = run_stream(settings, env, DriftSpec(after=1000, feature="amount", shift=1.0))
    opened = [a for a in alerts if a["state"] == "OPEN"]
    assert opened, "no alert opened"
    assert opened[0]["feature"] in AMOUNT_FEATURES
    assert opened[0]["ranked_features"][0]["feature"] in AMOUNT_FEATURES
    assert opened[0]["first_offset"] >= 0 and opened[0]["window_end"] >= opened[0]["window_start"]
    assert opened[0]["stream"] == "fraud" and opened[0]["model_version"] == "1.0.0"
    # drift_alert.v2 reads alone: how its threshold was set and the settings behind it
    assert opened[0]["calibration"] == "iid"  # amount has no serial dependence in the reference
    assert opened[0]["reference_rows"] == 5000 and opened[0]["windows"] == [100, 300, 1000]
    assert opened[0]["check_every"] == 10 and opened[0]["target_ert"] > 0

    status = subprocess.run(
        [sys.executable, "-m", "pipeline", "drift", "status", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert '"rows_seen": ' in status.stdout and opened[0]["feature"] in status.stdout
    # the fraud reference is in arrival order (manifest reference.order): the worker
    # block-bootstraps the serially dependent feature and says so
    features = {f["feature"]: f for f in json.loads(status.stdout)[0]["features"]}
    assert features["txn_count_1h"]["calibration"].startswith("block-bootstrap(block=")
    assert features["log_amount"]["calibration"] == "iid"


def test_stationary_stream_raises_no_alert(settings, env):
    assert run_stream(settings, env, None) == []
