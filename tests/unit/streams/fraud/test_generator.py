"""Synthetic transactions: reproducible, schema-valid, with the fraud share and drift asked for."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import fastavro
import numpy as np
import pytest
from fastavro.validation import validate

from pipeline.streams.fraud.generator import DriftSpec, TransactionGenerator

SCHEMA_PATH = Path(__file__).resolve().parents[4] / "schemas" / "fraud_request.v1.avsc"


@pytest.fixture(scope="module")
def schema() -> dict:
    return fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))


def test_same_seed_gives_same_records_and_labels() -> None:
    a = TransactionGenerator(seed=11).generate(2000)
    b = TransactionGenerator(seed=11).generate(2000)
    assert a.records == b.records
    assert np.array_equal(a.labels, b.labels)


def test_different_seeds_give_different_records() -> None:
    a = TransactionGenerator(seed=1).generate(500)
    b = TransactionGenerator(seed=2).generate(500)
    assert [r["request_id"] for r in a.records] != [r["request_id"] for r in b.records]
    assert [r["amount"] for r in a.records] != [r["amount"] for r in b.records]


def test_the_stream_does_not_depend_on_batch_sizes() -> None:
    sliced = TransactionGenerator(seed=3)
    records = sliced.generate(5).records + sliced.generate(10_000).records
    records += sliced.generate(7).records
    assert records == TransactionGenerator(seed=3).generate(10_012).records


def test_consecutive_batches_continue_the_stream() -> None:
    generator = TransactionGenerator(seed=4)
    first, second = generator.generate(300), generator.generate(300)
    assert first.records[-1]["event_time"] <= second.records[0]["event_time"]
    ids = {r["request_id"] for r in first.records + second.records}
    assert len(ids) == 600
    assert generator.produced == 600


@pytest.mark.parametrize("share", [0.02, 0.08])
def test_fraud_share_is_near_the_configured_one(share: float) -> None:
    labels = TransactionGenerator(seed=3, fraud_share=share).generate(100_000).labels
    assert labels.dtype == bool
    assert labels.mean() == pytest.approx(share, rel=0.1)


def test_records_are_valid_fraud_requests(schema: dict) -> None:
    batch = TransactionGenerator(seed=5, tenants=("t1", "t2", "t3")).generate(3000)
    field_names = {f["name"] for f in schema["fields"]}
    for record in batch.records:
        assert set(record) == field_names
        assert validate(record, schema, raise_errors=True)
    assert {r["tenant"] for r in batch.records} == {"t1", "t2", "t3"}
    assert all(uuid.UUID(r["request_id"]).version == 4 for r in batch.records[:100])


def test_event_times_increase_with_a_daily_rhythm() -> None:
    batch = TransactionGenerator(seed=6, start_ms=1_700_000_000_000).generate(50_000)
    times = np.array([r["event_time"] for r in batch.records])
    assert times[0] >= 1_700_000_000_000
    assert np.all(np.diff(times) >= 0)
    hours = np.bincount((times // 3_600_000) % 24, minlength=24)
    assert hours[12] > 5 * hours[3]  # lunchtime is much busier than 3 a.m.


def test_fraud_shows_the_patterns_a_model_can_learn() -> None:
    batch = TransactionGenerator(seed=8).generate(100_000)
    records, fraud = batch.records, batch.labels
    ratio = np.array(
        [r["amount"] / r["card_avg_amount_30d"] if r["card_avg_amount_30d"] else 1.0
         for r in records]
    )  # fmt: skip
    velocity = np.array([r["card_txn_count_1h"] >= 3 for r in records])
    foreign_cnp = np.array(
        [r["merchant_country"] != r["card_country"] and r["channel"] in ("ECOM", "MOTO")
         for r in records]
    )  # fmt: skip
    assert (ratio > 3)[fraud].mean() > 5 * (ratio > 3)[~fraud].mean()
    assert velocity[fraud].mean() > 10 * velocity[~fraud].mean()
    assert foreign_cnp[fraud].mean() > 5 * foreign_cnp[~fraud].mean()
    # ...but not every fraud is obvious, and not every oddity is fraud.
    assert (~(velocity | foreign_cnp | (ratio > 3)))[fraud].mean() > 0.1
    assert (velocity | foreign_cnp)[~fraud].sum() > fraud.sum()


def _log_amounts(records: list[dict]) -> np.ndarray:
    return np.log([r["amount"] for r in records])


def test_drift_shifts_the_field_mean_by_the_requested_sds_after_the_cut() -> None:
    clean = TransactionGenerator(seed=9).generate(30_000).records
    drifting = TransactionGenerator(
        seed=9, drift=DriftSpec(after=10_000, feature="amount", shift=1.0)
    )
    # Counted across calls: the cut falls inside the second batch.
    drifted = drifting.generate(6_000).records + drifting.generate(24_000).records
    assert drifted[:10_000] == clean[:10_000]
    sd = _log_amounts(clean).std()
    moved = _log_amounts(drifted[10_000:]).mean() - _log_amounts(clean[10_000:]).mean()
    assert moved / sd == pytest.approx(1.0, abs=0.05)
    assert min(r["amount"] for r in drifted) > 0


def test_drift_scale_changes_the_spread_not_the_mean() -> None:
    clean = TransactionGenerator(seed=9).generate(20_000).records
    drifted = TransactionGenerator(
        seed=9, drift=DriftSpec(after=0, feature="seconds_since_last_txn", scale=2.0)
    ).generate(20_000).records
    logs_clean = np.log([r["seconds_since_last_txn"] for r in clean])
    logs_drifted = np.log([r["seconds_since_last_txn"] for r in drifted])
    assert logs_drifted.std() / logs_clean.std() == pytest.approx(2.0, rel=0.05)
    assert abs(logs_drifted.mean() - logs_clean.mean()) < 0.05 * logs_clean.std()


def test_drift_on_counts_stays_whole_and_non_negative(schema: dict) -> None:
    drifted = TransactionGenerator(
        seed=2, drift=DriftSpec(after=0, feature="card_txn_count_1h", shift=2.0)
    ).generate(5_000).records
    clean = TransactionGenerator(seed=2).generate(5_000).records
    counts = np.array([r["card_txn_count_1h"] for r in drifted])
    assert counts.min() >= 0
    assert counts.mean() > np.mean([r["card_txn_count_1h"] for r in clean]) + 1.0
    assert all(validate(r, schema, raise_errors=True) for r in drifted[:500])


def test_drift_spec_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="not one of"):
        DriftSpec(after=0, feature="merchant_country")


def test_generates_at_least_50k_records_per_second() -> None:
    generator = TransactionGenerator(seed=1)
    generator.generate(1000)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        generator.generate(50_000)
        best = min(best, time.perf_counter() - started)
    assert 50_000 / best >= 50_000
