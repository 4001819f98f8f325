"""The one versioned FraudRequest -> model-input function, shared by training, serving and replay.

Any change to what a feature means, its order or its validation is a new
`PREPROCESSING_VERSION`; models record the version they were trained with, and replay compares
`pipeline.scoring.provenance.data_hashes` of the features recomputed with it.

Features (float32, in `FEATURE_NAMES` order):
- log_amount: ln(amount).
- log_amount_to_avg_ratio: ln((amount + 1) / (card_avg_amount_30d + 1)); +1 keeps new cards
  (average 0) finite.
- log_avg_amount_30d: ln(1 + card_avg_amount_30d).
- is_new_card: 1 when card_avg_amount_30d is 0 (no spending history in 30 days).
- hour_sin, hour_cos: UTC hour of day (with minutes) on the unit circle, so 23:59 is near 00:00.
- is_foreign: merchant_country differs from card_country.
- card_not_present: channel ECOM or MOTO.
- is_atm: channel ATM.
- txn_count_1h: card_txn_count_1h as is.
- log_seconds_since_last: ln(1 + seconds_since_last_txn).
- risky_mcc: merchant_category in `RISKY_MCCS` (money transfer, telemarketing, quasi-cash,
  gambling).

Validation: a record that is missing a field, has the wrong type, a NaN/inf or an out-of-range
value is left out of the matrix and reported in `errors` with every reason found; the other rows
are unaffected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

# the canonical input bytes and their hashes are the pipeline's, shared by every stream

PREPROCESSING_VERSION = "fraud-features/1"

FEATURE_NAMES: tuple[str, ...] = (
    "log_amount",
    "log_amount_to_avg_ratio",
    "log_avg_amount_30d",
    "is_new_card",
    "hour_sin",
    "hour_cos",
    "is_foreign",
    "card_not_present",
    "is_atm",
    "txn_count_1h",
    "log_seconds_since_last",
    "risky_mcc",
)

# Not watched for drift: time of day is not stationary over a drift window (a window of a few
# hundred rows spans minutes, the reference spans days), so these would alarm all the time.
DRIFT_EXEMPT_FEATURES = frozenset({"hour_sin", "hour_cos"})

# Kept here (not imported from the generator) because it is part of the preprocessing contract.
RISKY_MCCS = frozenset({"4829", "5967", "6051", "7995"})
VALID_CHANNELS = frozenset({"POS", "ATM", "ECOM", "MOTO"})
CARD_NOT_PRESENT_CHANNELS = frozenset({"ECOM", "MOTO"})

MAX_AMOUNT = 1_000_000.0
MAX_TXN_COUNT_1H = 10_000
# 1970 .. 2100: anything outside is a unit mistake (seconds or microseconds), not a time.
MAX_EVENT_TIME_MS = 4_102_444_800_000

_IDENTIFIER_FIELDS = ("request_id", "tenant", "card_id", "account_id")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_MS_PER_DAY = 86_400_000
_TWO_PI_OVER_DAY = 2.0 * math.pi / _MS_PER_DAY


@dataclass(frozen=True)
class FeatureBatch:
    """Model inputs for the valid records of a batch, and why the others were left out."""

    matrix: np.ndarray  # float32 [n_valid, len(FEATURE_NAMES)], C-contiguous
    valid_index: np.ndarray  # int64 positions in the input of the rows of `matrix`
    errors: list[tuple[int, str]]  # (input position, "reason; reason"), by position


def build_features(records: Sequence[Mapping[str, object]]) -> FeatureBatch:
    """Validate FraudRequest records and turn the valid ones into the model's input matrix."""
    n = len(records)
    reasons: dict[int, list[str]] = {}

    def reject(mask: np.ndarray | list[bool], reason: str | Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask).tolist():
            reasons.setdefault(i, []).append(reason(i) if callable(reason) else reason)

    # One pass per field pulling values into lists; the checks below are array operations, or
    # cheap string tests on values of a known small shape.
    for name in _IDENTIFIER_FIELDS:
        ids = [r.get(name) for r in records]
        bad_ids = [not (type(v) is str and v) for v in ids]
        if any(bad_ids):
            reject(bad_ids, lambda i, v=ids, f=name: _describe_missing(f, v[i], "string"))

    amount = _float_column(records, "amount", reject)
    avg_30d = _float_column(records, "card_avg_amount_30d", reject)
    gap_s = _float_column(records, "seconds_since_last_txn", reject)
    count_1h = _float_column(records, "card_txn_count_1h", reject)
    event_ms = _event_time_column(records, reject)

    # NaN compares False everywhere, so rows already rejected as NaN/missing are not hit again.
    with np.errstate(invalid="ignore"):
        reject(
            (amount <= 0) | (amount > MAX_AMOUNT),
            lambda i: f"amount {amount[i]:g} out of range (0, 1000000]",
        )
        reject(avg_30d < 0, lambda i: f"card_avg_amount_30d {avg_30d[i]:g} is negative")
        reject(gap_s < 0, lambda i: f"seconds_since_last_txn {gap_s[i]:g} is negative")
        reject(
            (count_1h < 0) | (count_1h > MAX_TXN_COUNT_1H),
            lambda i: f"card_txn_count_1h {count_1h[i]:g} out of range [0, 10000]",
        )
        reject(
            np.isfinite(count_1h) & (count_1h != np.floor(count_1h)),
            lambda i: f"card_txn_count_1h {count_1h[i]:g} is not a whole number",
        )

    currency = [r.get("currency") for r in records]
    reject(
        [not (_is_code(v, 3, str.isalpha) and v.isupper()) for v in currency],
        lambda i: _describe_code("currency", currency[i], "3 uppercase letters"),
    )
    mcc = [r.get("merchant_category") for r in records]
    reject(
        [not _is_code(v, 4, str.isdigit) for v in mcc],
        lambda i: _describe_code("merchant_category", mcc[i], "4 digits"),
    )
    merchant_country = [r.get("merchant_country") for r in records]
    card_country = [r.get("card_country") for r in records]
    for name, values in (("merchant_country", merchant_country), ("card_country", card_country)):
        reject(
            [not (_is_code(v, 2, str.isalpha) and v.isupper()) for v in values],
            lambda i, v=values, f=name: _describe_code(f, v[i], "2 uppercase letters"),
        )
    channel = [r.get("channel") for r in records]
    reject(
        [not (type(v) is str and v in VALID_CHANNELS) for v in channel],
        lambda i: _describe_code("channel", channel[i], "one of POS, ATM, ECOM, MOTO"),
    )

    valid = np.ones(n, dtype=bool)
    if reasons:
        valid[list(reasons)] = False
    valid_index = np.flatnonzero(valid)
    errors = [(i, "; ".join(reasons[i])) for i in sorted(reasons)]

    # From here on only valid rows: every value is present, finite and in range.
    if reasons:
        amount, avg_30d, gap_s = amount[valid], avg_30d[valid], gap_s[valid]
        count_1h, event_ms = count_1h[valid], event_ms[valid]
    rows = valid_index.tolist() if reasons else range(n)
    is_foreign = [merchant_country[i] != card_country[i] for i in rows]
    card_not_present = [channel[i] in CARD_NOT_PRESENT_CHANNELS for i in rows]
    is_atm = [channel[i] == "ATM" for i in rows]
    risky = [mcc[i] in RISKY_MCCS for i in rows]

    angle = (event_ms % _MS_PER_DAY).astype(np.float64) * _TWO_PI_OVER_DAY
    matrix = np.empty((len(valid_index), len(FEATURE_NAMES)), dtype=np.float32)
    matrix[:, 0] = np.log(amount)
    matrix[:, 1] = np.log((amount + 1.0) / (avg_30d + 1.0))
    matrix[:, 2] = np.log1p(avg_30d)
    matrix[:, 3] = avg_30d == 0.0
    matrix[:, 4] = np.sin(angle)
    matrix[:, 5] = np.cos(angle)
    matrix[:, 6] = is_foreign
    matrix[:, 7] = card_not_present
    matrix[:, 8] = is_atm
    matrix[:, 9] = count_1h
    matrix[:, 10] = np.log1p(gap_s)
    matrix[:, 11] = risky
    return FeatureBatch(matrix=matrix, valid_index=valid_index, errors=errors)


# -- column extraction ------------------------------------------------------------------------

_Reject = Callable[[np.ndarray | list[bool], str | Callable[[int], str]], None]
_PLAIN_NUMBER_TYPES = frozenset({int, float})


def _is_number(value: object) -> bool:
    # bool is an int subclass but never a valid amount or count.
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _float_column(
    records: Sequence[Mapping[str, object]], name: str, reject: _Reject
) -> np.ndarray:
    """`name` of every record as float64; rejected rows hold NaN."""
    values = [r.get(name) for r in records]
    column: np.ndarray | None = None
    if set(map(type, values)) <= _PLAIN_NUMBER_TYPES:  # the common case: plain int/float only
        try:
            column = np.array(values, dtype=np.float64).reshape(len(values))
        except OverflowError:  # an int beyond float range: sort it out below
            column = None
    already_bad = np.zeros(len(values), dtype=bool)
    if column is None:
        column = np.full(len(values), np.nan)
        bad: dict[int, str] = {}
        for i, v in enumerate(values):
            if not _is_number(v):
                bad[i] = _describe_missing(name, v, "number")
                continue
            try:
                column[i] = v
            except OverflowError:
                bad[i] = f"{name} {v} out of range"
        if bad:
            already_bad[list(bad)] = True
            reject(already_bad, bad.__getitem__)
    nan = np.isnan(column) & ~already_bad
    if nan.any():
        reject(nan, f"{name} is NaN")
    inf = np.isinf(column)
    if inf.any():
        reject(inf, lambda i: f"{name} is {'+' if column[i] > 0 else '-'}inf")
        column[inf] = np.nan  # so that the range checks skip the row
    return column


def _event_time_column(records: Sequence[Mapping[str, object]], reject: _Reject) -> np.ndarray:
    """event_time as int64 epoch ms (ints as is, aware datetimes converted); bad rows hold 1."""
    values = [r.get("event_time") for r in records]
    column: np.ndarray | None = None
    if set(map(type, values)) <= {int}:
        try:
            column = np.array(values, dtype=np.int64).reshape(len(values))
        except OverflowError:  # beyond int64: sort it out below
            column = None
    if column is None:
        column = np.ones(len(values), dtype=np.int64)
        bad: dict[int, str] = {}
        for i, v in enumerate(values):
            if isinstance(v, datetime):
                if v.utcoffset() is None:
                    bad[i] = "event_time is a datetime without timezone"
                    continue
                v = (v - _EPOCH) // _ONE_MS
            elif not isinstance(v, int | np.integer) or isinstance(v, bool | np.bool_):
                bad[i] = _describe_missing("event_time", v, "epoch milliseconds or datetime")
                continue
            if 0 < v <= MAX_EVENT_TIME_MS:
                column[i] = v
            else:
                bad[i] = f"event_time {v} out of range (0, {MAX_EVENT_TIME_MS}] ms"
        if bad:
            mask = np.zeros(len(values), dtype=bool)
            mask[list(bad)] = True
            reject(mask, bad.__getitem__)
        return column
    out_of_range = (column <= 0) | (column > MAX_EVENT_TIME_MS)
    if out_of_range.any():
        reject(
            out_of_range,
            lambda i: f"event_time {column[i]} out of range (0, {MAX_EVENT_TIME_MS}] ms",
        )
    return column


def _is_code(value: object, length: int, char_test: Callable[[str], bool]) -> bool:
    return type(value) is str and len(value) == length and value.isascii() and char_test(value)


def _describe_missing(name: str, value: object, expected: str) -> str:
    if value is None:
        return f"{name} missing"
    if isinstance(value, str) and not value:
        return f"{name} is empty"
    return f"{name} has type {type(value).__name__}, expected {expected}"


def _describe_code(name: str, value: object, expected: str) -> str:
    if value is None:
        return f"{name} missing"
    return f"{name} {value!r} is not {expected}"
