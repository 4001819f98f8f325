"""DriftMonitor: requests in, alert records out, state carried over a restart via the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.codec import AvroDeserializer, AvroSerializer, SchemaCatalog
from pipeline.codec.registry import LocalRegistry
from pipeline.config import REPO_ROOT
from pipeline.core.registry import get_plugin, stream_topics
from pipeline.drift.monitor import DriftMonitor
from pipeline.models.manifest import resolve_model_dir
from pipeline.models.runtime import load_model
from pipeline.scoring import InboundMessage
from pipeline.streams.fraud.generator import DriftSpec, TransactionGenerator

REGISTRY = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
SPEC = stream_topics("fraud", "unit.")
ENCODE = AvroSerializer(REGISTRY, REGISTRY.catalog.latest("fraud_request"), SPEC.requests)


class MemoryStore:
    """In-process stand-in for RedisStateStore (the real one is covered by integration tests)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.available = True

    def put(self, key: str, blob: bytes) -> bool:
        self.blobs[key] = blob
        return True

    def get(self, key: str) -> bytes | None:
        return self.blobs.get(key)


@pytest.fixture(scope="module")
def model():
    return load_model(resolve_model_dir(REPO_ROOT / "models", "fraud"), warmup_rows=0)


def monitor(model, store, cache: Path) -> DriftMonitor:
    return DriftMonitor(get_plugin("fraud"), SPEC, model, REGISTRY, store, calibration_cache=cache)


def batches(records, size=200, start=0):
    for i in range(0, len(records), size):
        yield [
            InboundMessage(
                SPEC.requests,
                0,
                start + i + j,
                1_795_400_000_000 + i + j,
                r["card_id"].encode(),
                ENCODE(r),
            )
            for j, r in enumerate(records[i : i + size])
        ]


def test_a_shift_in_amount_opens_an_alert_on_an_amount_feature(model, tmp_path):
    drifting = monitor(model, MemoryStore(), tmp_path)
    assert not set(drifting.detector.feature_names) & get_plugin("fraud").drift_exempt
    records = (
        TransactionGenerator(seed=3, drift=DriftSpec(after=1000, feature="amount", shift=1.0))
        .generate(3000)
        .records
    )
    out = [m for batch in batches(records) for m in drifting.process(batch)]
    alerts = [AvroDeserializer(REGISTRY)(m.value) for m in out]
    assert alerts and alerts[0]["state"] == "OPEN"
    assert alerts[0]["feature"] in {"log_amount", "log_amount_to_avg_ratio"}
    assert out[0].key == f"fraud/fraud/{alerts[0]['feature']}".encode()
    assert out[0].topic == "unit.drift.alerts"
    assert alerts[0]["first_offset"] <= alerts[0]["last_offset"]
    assert 1000 <= alerts[0]["last_offset"] < 3000  # the window reaches into the drift


def test_invalid_requests_are_skipped_not_fatal(model, tmp_path):
    watcher = monitor(model, MemoryStore(), tmp_path)
    batch = next(batches(TransactionGenerator(seed=4).generate(20).records))
    batch[0].value = b"junk"
    assert watcher.process(batch) == []
    assert watcher.skipped == 1 and watcher.detector.rows_seen == 19


def test_a_restart_continues_from_the_checkpoint(model, tmp_path):
    store = MemoryStore()
    records = (
        TransactionGenerator(seed=5, drift=DriftSpec(after=500, feature="amount", shift=1.5))
        .generate(2000)
        .records
    )
    first = monitor(model, store, tmp_path)
    for batch in batches(records[:1000]):
        first.process(batch)
    assert first.open_alerts and first.checkpoint()
    restarted = monitor(model, store, tmp_path)
    assert restarted.detector.rows_seen == 1000
    assert restarted.open_alerts.keys() == first.open_alerts.keys()
    decode = AvroDeserializer(REGISTRY)
    continuing = [
        (decode(m.value)["feature"], decode(m.value)["state"])
        for batch in batches(records[1000:], start=1000)
        for m in restarted.process(batch)
    ]
    # the same decisions as a detector that never stopped
    uninterrupted = monitor(model, MemoryStore(), tmp_path)
    for batch in batches(records[:1000]):
        uninterrupted.process(batch)
    expected = [
        (decode(m.value)["feature"], decode(m.value)["state"])
        for batch in batches(records[1000:], start=1000)
        for m in uninterrupted.process(batch)
    ]
    assert expected and continuing == expected


def test_time_of_day_is_watched_a_day_at_a_time(model, tmp_path):
    watcher = monitor(model, MemoryStore(), tmp_path)
    assert watcher.diurnal is not None  # hour_sin / hour_cos: exempt from windows, not ignored
    day = 2000  # rows per day: 20,000 rows are ten days
    records = TransactionGenerator(seed=6, events_per_second=day / 86_400).generate(20_000).records
    out = [m for batch in batches(records, size=500) for m in watcher.process(batch)]
    decode = AvroDeserializer(REGISTRY)
    assert [decode(m.value)["feature"] for m in out].count("hour_of_day") == 0
    assert watcher.diurnal.days >= 8
    assert watcher.checkpoint()
    status = __import__("json").loads(watcher.store.blobs[f"status:{watcher.checkpoint_key}"])
    # the fraud reference is in arrival order: txn_count_1h block-bootstrapped, the rest iid
    assert status["calibration"].startswith("block-bootstrap(block=")
    assert status["calibration"].endswith(", iid")
    assert status["diurnal"]["days"] == watcher.diurnal.days


def _rows(model, drifting: DriftMonitor, feature: str, shift: float, rows: int = 3000):
    """Reference rows of the monitored columns in stored order, `feature` shifted after 1000."""
    from pipeline.drift.monitor import DriftRows

    matrix = np.tile(model.reference[:, drifting.columns], (-(-rows // len(model.reference)), 1))
    matrix = np.ascontiguousarray(matrix[:rows])
    matrix[1000:, list(drifting.detector.feature_names).index(feature)] += shift
    index = np.arange(rows, dtype=np.int64)
    return DriftRows(matrix, index, 1_795_400_000_000 + index)


def test_a_reference_in_arrival_order_calibrates_by_block_bootstrap_and_alerts_say_so(
    model, tmp_path
):
    assert model.manifest.reference.order == "arrival"  # models/fraud: sampled in stream order
    drifting = monitor(model, MemoryStore(), tmp_path)
    kinds = dict(zip(drifting.detector.feature_names, drifting.detector.calibration, strict=True))
    # txn_count_1h follows the time of day (memory over hundreds of rows): block bootstrap;
    # the features without measurable serial dependence keep the iid threshold
    assert kinds["txn_count_1h"].startswith("block-bootstrap(block=")
    assert kinds["log_amount"] == "iid"
    detector = drifting.detector
    thresholds = dict(zip(detector.feature_names, detector.thresholds, strict=True))
    assert thresholds["txn_count_1h"] > thresholds["log_amount"]
    out = drifting.update(_rows(model, drifting, "txn_count_1h", 3.0))
    alerts = [AvroDeserializer(REGISTRY)(m.value) for m in out]
    counted = [a for a in alerts if a["feature"] == "txn_count_1h" and a["state"] == "OPEN"]
    assert counted, [a["feature"] for a in alerts]
    assert counted[0]["calibration"] == "block-bootstrap"
    assert counted[0]["calibration_detail"].startswith("block=")
    assert counted[0]["threshold"] == pytest.approx(thresholds["txn_count_1h"])
    amount = monitor(model, MemoryStore(), tmp_path).update(
        _rows(model, drifting, "log_amount", 1.0)
    )
    first = AvroDeserializer(REGISTRY)(amount[0].value)
    assert first["feature"] == "log_amount" and first["calibration"] == "iid"


def test_an_unordered_reference_calibrates_iid(model, tmp_path):
    from dataclasses import replace

    manifest = replace(
        model.manifest, reference=replace(model.manifest.reference, order="unordered")
    )
    unordered = monitor(replace(model, manifest=manifest), MemoryStore(), tmp_path)
    assert set(unordered.detector.calibration) == {"iid"}
    assert unordered.detector.config.calibration == "iid"
