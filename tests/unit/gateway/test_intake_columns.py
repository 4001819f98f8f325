"""The column-at-a-time check of a submission (`_valid_records`) accepts exactly what the
row-by-row check (`_record`) accepts, with the same records; anything else goes back to the
row-by-row check, which words the problems. And the ids it makes are UUID4s."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.gateway.intake import StreamIntake, _new_ids, _uuid4_hex
from pipeline.redis.client import DegradingRedis

DOWN = DegradingRedis("redis://127.0.0.1:1/0", retry_after_s=0.05, timeout_s=0.05)
MISSING = object()
# JSON's value kinds, the types' edges, and the strings the fields treat specially
PALETTE = [
    "12", "", "POS", "BAD", "acme", "someone-else", "r 1", "x" * 201,
    "2025-01-06T00:00:10.932+00:00",
    "2025-01-06T00:00:10Z", "2025-01-06T00:00:10", "yesterday", 0, 12, -1, 2**31 - 1, 2**31,
    -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, 12.5, -5.0, 0.0, float("nan"), float("inf"), True,
    False, None, [], [1], {}, {"a": "b"}, {"a": 1}, MISSING,
]  # fmt: skip


@pytest.fixture(scope="module", params=["fraud", "docs"])
def intake(request) -> StreamIntake:
    settings = Settings()
    plugin = get_plugin(request.param)
    return StreamIntake(settings, plugin, registry_from_settings(settings), DOWN)


def _valid(intake: StreamIntake) -> dict:
    if intake.plugin.name == "docs":
        return {"document_id": "d-1", "text": "a short note"}
    return {
        "card_id": "card-1", "account_id": "acct-1", "amount": 12.5, "currency": "EUR",
        "merchant_category": "5411", "merchant_country": "DE", "card_country": "DE",
        "channel": "POS", "event_time": 1736121610932, "card_txn_count_1h": 1,
        "card_avg_amount_30d": 30.0, "seconds_since_last_txn": 3600.0,
    }  # fmt: skip


def _with(item: dict, name: str, value: object) -> dict:
    changed = dict(item)
    if value is MISSING:
        changed.pop(name, None)
    else:
        changed[name] = value
    return changed


def _same_outcome(intake: StreamIntake, items: list) -> None:
    by_rows = [intake._record(i, item, "acme") for i, item in enumerate(items)]
    given = [r.get("request_id") for r, _ in by_rows]
    rows_valid = not any(problems for _, problems in by_rows) and len(set(given)) == len(given)
    fast = intake._valid_records(items, ["acme"] * len(items))
    if not rows_valid:
        assert fast is None, items
        return
    assert fast is not None, items  # every valid submission takes the column path
    for item, got, (want, _) in zip(items, fast, by_rows, strict=True):
        if item.get("request_id") in (None, ""):  # a made id each: equal in shape only
            assert len(got.pop("request_id")) == 36
            want.pop("request_id")
        assert got == want and list(got) == list(want)


def test_every_field_with_every_kind_of_value_is_judged_as_row_by_row(intake):
    base = _valid(intake)
    names = [f["name"] for f in intake._fields] + ["colour"]
    for name, value in itertools.product(names, PALETTE):
        _same_outcome(intake, [base, _with(base, name, value)])


def test_two_fields_changed_at_once_and_repeated_ids_are_judged_as_row_by_row(intake):
    base = _valid(intake)
    names = [f["name"] for f in intake._fields]
    values = ["12", 12, 12.5, None, "", "r-1", float("nan"), MISSING]
    for (a, b), x, y in itertools.product(itertools.combinations(names, 2), values, values):
        _same_outcome(intake, [_with(_with(base, a, x), b, y)])
    _same_outcome(intake, [_with(base, "request_id", "r-1"), _with(base, "request_id", "r-1")])
    _same_outcome(intake, [_with(base, "request_id", "r-1"), _with(base, "request_id", "r-2")])
    _same_outcome(intake, [base, [1, 2]])
    _same_outcome(intake, [base, "text"])


def test_coalesced_submissions_are_checked_together_as_each_alone(intake):
    base = _valid(intake)
    tenant_field = intake.plugin.tenant_field
    submissions = [
        ([_with(base, "request_id", "r-1")], "acme"),
        ([_with(base, "request_id", "r-1"), base], "globex"),  # r-1 again: another submission
        ([base], "initech"),
    ]
    together = intake.check_many(submissions)
    for (items, tenant), checked in zip(submissions, together, strict=True):
        alone = intake.check(items, tenant)
        assert not checked.problems and not alone.problems
        assert [r[tenant_field] for r in checked.records] == [tenant] * len(items)
        assert checked.hashes == alone.hashes and checked.costs == alone.costs
        given = [i for i, item in enumerate(items) if "request_id" in item]
        assert [checked.records[i]["request_id"] for i in given] == [
            items[i]["request_id"] for i in given
        ]
    # one repeated id inside a submission: refused there, the others still pass
    refused, fine = intake.check_many(
        [([_with(base, "request_id", "r-2"), _with(base, "request_id", "r-2")], "acme"),
         ([base], "acme")]
    )  # fmt: skip
    assert [(p.index, p.field) for p in refused.problems] == [(1, "request_id")]
    assert not fine.problems and len(fine.records) == 1


def test_made_ids_are_uuid4_text():
    for n in [0, 2**128 - 1, *(int.from_bytes(os.urandom(16), "big") for _ in range(200))]:
        assert _uuid4_hex(f"{n:032x}") == str(uuid.UUID(int=n, version=4))
    ids = _new_ids(1000)
    assert len(set(ids)) == 1000 and all(uuid.UUID(i).version == 4 for i in ids)
