"""build_features: known inputs give known features, bad rows are reported and left out alone."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import fastavro
import numpy as np
import pytest

from pipeline.streams.fraud.features import (
    FEATURE_NAMES,
    PREPROCESSING_VERSION,
    build_features,
)
from pipeline.streams.fraud.generator import TransactionGenerator

SCHEMA_PATH = Path(__file__).resolve().parents[4] / "schemas" / "fraud_request.v1.avsc"
SIX_AM_MS = int(datetime(2025, 1, 6, 6, 0, tzinfo=UTC).timestamp() * 1000)


def known_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "request_id": "5b0a3a4e-2f49-4d55-8f0e-1e2b3c4d5e6f",
        "tenant": "acme-bank",
        "card_id": "card-000000000001",
        "account_id": "acct-000000000001",
        "amount": 100.0,
        "currency": "EUR",
        "merchant_category": "7995",
        "merchant_country": "FR",
        "card_country": "DE",
        "channel": "ECOM",
        "event_time": SIX_AM_MS,
        "card_txn_count_1h": 3,
        "card_avg_amount_30d": 50.0,
        "seconds_since_last_txn": 59.0,
    }
    record.update(changes)
    return record


def test_known_record_gives_known_vector() -> None:
    batch = build_features([known_record()])
    expected = {
        "log_amount": math.log(100.0),
        "log_amount_to_avg_ratio": math.log(101.0 / 51.0),
        "log_avg_amount_30d": math.log(51.0),
        "is_new_card": 0.0,
        "hour_sin": 1.0,  # 06:00 is a quarter of the way round the clock
        "hour_cos": 0.0,
        "is_foreign": 1.0,
        "card_not_present": 1.0,
        "is_atm": 0.0,
        "txn_count_1h": 3.0,
        "log_seconds_since_last": math.log(60.0),
        "risky_mcc": 1.0,
    }
    assert tuple(expected) == FEATURE_NAMES
    assert batch.matrix.dtype == np.float32
    assert batch.matrix.flags["C_CONTIGUOUS"]
    assert batch.matrix.shape == (1, len(FEATURE_NAMES))
    np.testing.assert_allclose(batch.matrix[0], list(expected.values()), rtol=1e-6, atol=1e-6)
    assert batch.valid_index.tolist() == [0]
    assert batch.errors == []
    assert PREPROCESSING_VERSION == "fraud-features/1"


def test_domestic_atm_at_midnight_for_a_new_card() -> None:
    midnight = SIX_AM_MS - 6 * 3_600_000
    row = build_features(
        [known_record(channel="ATM", merchant_country="DE", merchant_category="6011",
                      event_time=midnight, card_avg_amount_30d=0.0, card_txn_count_1h=0)]
    ).matrix[0]  # fmt: skip
    values = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
    assert values["is_new_card"] == 1.0
    assert values["log_avg_amount_30d"] == 0.0
    assert values["hour_sin"] == pytest.approx(0.0, abs=1e-6)
    assert values["hour_cos"] == pytest.approx(1.0)
    assert (values["is_foreign"], values["card_not_present"], values["is_atm"]) == (0, 0, 1)
    assert values["risky_mcc"] == 0.0


def _drop(field: str) -> dict[str, object]:
    record = known_record()
    del record[field]
    return record


@pytest.mark.parametrize(
    ("bad_record", "reason"),
    [
        (known_record(amount=float("nan")), "amount is NaN"),
        (known_record(amount=2e9), "amount 2e+09 out of range (0, 1000000]"),
        (known_record(amount=0.0), "amount 0 out of range (0, 1000000]"),
        (known_record(amount=-5), "amount -5 out of range"),
        (known_record(amount=float("inf")), "amount is +inf"),
        (known_record(amount="12.50"), "amount has type str, expected number"),
        (known_record(amount=True), "amount has type bool"),
        (known_record(amount=None), "amount missing"),
        (known_record(amount=10**400), "amount 1000"),  # too big even for a float
        (known_record(amount=np.float32(3.5), card_avg_amount_30d="x"), "card_avg_amount_30d has"),
        (_drop("card_id"), "card_id missing"),
        (known_record(card_id=""), "card_id is empty"),
        (known_record(tenant=7), "tenant has type int"),
        (_drop("event_time"), "event_time missing"),
        (known_record(event_time=datetime(2025, 1, 6, 6)), "event_time is a datetime without"),
        (known_record(event_time=1.7e12), "event_time has type float"),
        (known_record(event_time=-1), "event_time -1 out of range"),
        (known_record(event_time=SIX_AM_MS * 1000), "out of range"),  # microseconds by mistake
        (known_record(event_time=2**70), "event_time 1180591620717411303424 out of range"),
        (known_record(event_time=datetime(1969, 1, 1, tzinfo=UTC)), "event_time -3153600000"),
        (known_record(card_txn_count_1h=-1), "card_txn_count_1h -1 out of range [0, 10000]"),
        (known_record(card_txn_count_1h=10_001), "card_txn_count_1h 10001 out of range"),
        (known_record(card_txn_count_1h=2.5), "card_txn_count_1h 2.5 is not a whole number"),
        (known_record(card_avg_amount_30d=-1.0), "card_avg_amount_30d -1 is negative"),
        (known_record(card_avg_amount_30d=float("-inf")), "card_avg_amount_30d is -inf"),
        (known_record(seconds_since_last_txn=-0.5), "seconds_since_last_txn -0.5 is negative"),
        (_drop("seconds_since_last_txn"), "seconds_since_last_txn missing"),
        (known_record(currency="eur"), "currency 'eur' is not 3 uppercase letters"),
        (known_record(currency="EURO"), "currency 'EURO' is not 3 uppercase letters"),
        (known_record(merchant_category="59x1"), "merchant_category '59x1' is not 4 digits"),
        (known_record(merchant_category=5411), "merchant_category 5411 is not 4 digits"),
        (known_record(merchant_country="DEU"), "merchant_country 'DEU' is not 2 uppercase"),
        (_drop("card_country"), "card_country missing"),
        (known_record(channel="WEB"), "channel 'WEB' is not one of POS, ATM, ECOM, MOTO"),
        (known_record(channel=None), "channel missing"),
    ],
)
def test_each_invalid_input_is_reported_and_only_that_row_left_out(
    bad_record: dict[str, object], reason: str
) -> None:
    good_a, good_b = known_record(), known_record(amount=12.5, channel="POS")
    batch = build_features([good_a, bad_record, good_b])
    assert len(batch.errors) == 1
    index, message = batch.errors[0]
    assert index == 1
    assert reason in message
    assert batch.valid_index.tolist() == [0, 2]
    np.testing.assert_array_equal(batch.matrix, build_features([good_a, good_b]).matrix)


def test_a_row_with_several_problems_lists_them_all() -> None:
    batch = build_features([known_record(amount=float("nan"), currency="x", card_id=None)])
    assert batch.matrix.shape == (0, len(FEATURE_NAMES))
    (index, message), = batch.errors
    assert index == 0
    for reason in ("card_id missing", "amount is NaN", "currency 'x' is not"):
        assert reason in message


def test_numpy_scalars_are_accepted_like_python_numbers() -> None:
    plain = build_features([known_record()])
    numpy_typed = build_features(
        [known_record(amount=np.float64(100.0), event_time=np.int64(SIX_AM_MS),
                      card_txn_count_1h=np.int32(3), card_avg_amount_30d=np.float32(50.0))]
    )  # fmt: skip
    assert numpy_typed.errors == []
    np.testing.assert_array_equal(plain.matrix, numpy_typed.matrix)


def test_datetime_and_epoch_ms_event_times_give_equal_features() -> None:
    as_ms = known_record(event_time=SIX_AM_MS + 123)
    utc = datetime(2025, 1, 6, 6, 0, 0, 123_000, tzinfo=UTC)
    as_utc = known_record(event_time=utc)
    plus_two = known_record(event_time=utc.astimezone(timezone(timedelta(hours=2))))
    batch = build_features([as_ms, as_utc, plus_two])
    assert batch.errors == []
    np.testing.assert_array_equal(batch.matrix[0], batch.matrix[1])
    np.testing.assert_array_equal(batch.matrix[0], batch.matrix[2])


def test_avro_decoded_records_give_the_same_features_as_the_originals() -> None:
    # fastavro decodes timestamp-millis to aware datetimes and the channel enum to str.
    schema = fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))
    records = TransactionGenerator(seed=12).generate(500).records
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, records)
    buffer.seek(0)
    decoded = list(fastavro.reader(buffer))
    assert isinstance(decoded[0]["event_time"], datetime)
    original, roundtrip = build_features(records), build_features(decoded)
    assert original.errors == roundtrip.errors == []
    np.testing.assert_array_equal(original.matrix, roundtrip.matrix)


def test_generated_records_are_all_valid() -> None:
    records = TransactionGenerator(seed=13).generate(20_000).records
    batch = build_features(records)
    assert batch.errors == []
    assert batch.matrix.shape == (20_000, len(FEATURE_NAMES))
    assert np.isfinite(batch.matrix).all()


def test_empty_input_gives_an_empty_matrix() -> None:
    batch = build_features([])
    assert batch.matrix.shape == (0, len(FEATURE_NAMES))
    assert batch.valid_index.shape == (0,)
    assert batch.errors == []
