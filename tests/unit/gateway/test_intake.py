"""A stream's intake: per-field reasons from the schema and the worker's preprocessing, the
caller's tenant, times, costs from the manifest, and cached rows through the plug-in head."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.gateway.intake import CachedRow, StreamIntake
from pipeline.redis.client import DegradingRedis
from pipeline.tiers.costs import units_per_row

DOWN = DegradingRedis("redis://127.0.0.1:1/0", retry_after_s=0.05, timeout_s=0.05)


@pytest.fixture(scope="module")
def fraud() -> StreamIntake:
    settings = Settings()
    return StreamIntake(settings, get_plugin("fraud"), registry_from_settings(settings), DOWN)


def request(**changes):
    base = {
        "card_id": "card-1", "account_id": "acct-1", "amount": 12.5, "currency": "EUR",
        "merchant_category": "5411", "merchant_country": "DE", "card_country": "DE",
        "channel": "POS", "event_time": 1736121610932, "card_txn_count_1h": 1,
        "card_avg_amount_30d": 30.0, "seconds_since_last_txn": 3600.0,
    }  # fmt: skip
    return {**base, **changes}


def test_a_valid_request_gets_an_id_the_callers_tenant_a_hash_and_a_cost(fraud):
    checked = fraud.check([request(), request(event_time="2025-01-06T00:00:10.932+00:00")], "acme")
    assert not checked.problems
    first, second = checked.records
    assert first["tenant"] == "acme" and len(first["request_id"]) == 36
    assert second["event_time"] == 1736121610932  # ISO-8601 with an offset, as epoch ms
    assert checked.hashes[0] == checked.hashes[1]  # the same model input
    # the served version's measured cost per row (what the worker's provenance reports)
    measured = units_per_row(fraud.manifest, fraud.manifest.directory)
    assert measured > 0 and checked.costs == [measured, measured]


def test_schema_and_preprocessing_problems_name_request_and_field(fraud):
    checked = fraud.check(
        [
            request(amount="12"),
            {k: v for k, v in request().items() if k != "card_id"},
            request(colour="red", tenant="someone-else"),
            request(amount=-5.0),
            request(event_time="yesterday"),
            [1, 2],
        ],
        "acme",
    )
    reasons = {(p.index, p.field): p.reason for p in checked.problems}
    assert reasons[(0, "amount")] == "'12' is not a number"
    assert reasons[(1, "card_id")] == "missing"
    assert reasons[(2, "colour")] == "unknown field"
    assert reasons[(2, "tenant")] == "must be your API key's tenant or left out"
    assert "out of range" in reasons[(3, "amount")]  # the worker's own preprocessing reason
    assert "ISO-8601" in reasons[(4, "event_time")]
    assert reasons[(5, None)] == "expected a JSON object, got an array"
    assert not checked.records


def test_cached_rows_become_result_fields_through_the_head(fraud):
    checked = fraud.check([request(), request(amount=999.0)], "acme")
    rows = [CachedRow(fraud.model_version, np.array([0.9, 0.1])),
            CachedRow(fraud.model_version, np.array([0.1, 0.9]))]  # fmt: skip
    results = fraud.cached_results(checked, rows, [1])
    assert len(results) == 1
    result = results[0]
    assert result["request_id"] == checked.records[1]["request_id"]
    assert result["score"] == pytest.approx(0.9) and result["decision"] == "decline"
    assert result["model_version"] == fraud.model_version and result["key"] == "card-1"
    assert fraud.cached_rows(checked.hashes) is None  # Redis down: no fast path, no error


def test_document_cost_is_tokens_times_the_models_seconds_per_token():
    settings = Settings()
    docs = StreamIntake(settings, get_plugin("docs"), registry_from_settings(settings), DOWN)
    short, long = "a short note", " ".join(["word"] * 200)
    checked = docs.check([{"document_id": "a", "text": short}, {"document_id": "b", "text": long}],
                         "acme")  # fmt: skip
    assert not checked.problems
    per_token_ms = docs.seconds_per_token * 1000
    assert checked.costs[1] > 10 * checked.costs[0] > 0
    tokens = [round(c / per_token_ms) for c in checked.costs]
    assert abs(tokens[1] - 202) <= 4  # 200 words + the two special tokens
    empty = docs.check([{"document_id": "c", "text": "   "}], "acme")
    assert empty.problems and empty.problems[0].field == "text"


def test_submissions_checked_together_keep_their_own_records_and_problems(fraud):
    good, bad, other = fraud.check_many(
        [
            ([request(), request(amount=20.0)], "acme"),
            ([request(), request(amount=-1.0)], "globex"),  # refused whole
            ([request(request_id="r-1"), request(request_id="r-1", amount=3.0)], "acme"),
        ]
    )
    assert len(good.records) == 2 and not good.problems
    assert [r["tenant"] for r in good.records] == ["acme", "acme"]
    assert len(good.hashes) == len(good.costs) == 2 and good.hashes[0] != good.hashes[1]
    assert not bad.records and [(p.index, p.field) for p in bad.problems] == [(1, "amount")]
    assert [(p.index, p.field, p.reason) for p in other.problems] == [
        (1, "request_id", "used twice in this submission")
    ]
    alone = fraud.check([request(amount=20.0)], "acme")
    assert alone.hashes == good.hashes[1:]  # the same hash, checked alone or together


def test_under_a_policy_a_request_reserves_the_most_a_row_can_cost(tmp_path):
    import json

    from pipeline.config import REPO_ROOT
    from pipeline.models.manifest import ModelManifest

    root = tmp_path / "models"
    (root / "fraud").mkdir(parents=True)
    for entry in (REPO_ROOT / "models" / "fraud").iterdir():
        if entry.name != "routing.json":
            (root / "fraud" / entry.name).symlink_to(entry)

    def cost(version):
        directory = root / "fraud" / version
        return units_per_row(ModelManifest.load(directory), directory)

    small, large, candidate = "1.0.0-small.1", "1.0.0", "1.0.0-candidate.1"
    policy = root / "fraud" / "routing.json"
    settings = Settings(models_dir=root)
    registry = registry_from_settings(settings)

    def reserved(routing):
        if routing is None:
            policy.unlink(missing_ok=True)
        else:
            policy.write_text(json.dumps(routing))
        intake = StreamIntake(settings, get_plugin("fraud"), registry, DOWN)
        return intake.check([request()], "acme").costs[0], intake

    assert reserved(None)[0] == pytest.approx(cost(large))  # the served version's
    cascade = {"small": small, "large": large, "bands": [[0.0, 0.5]]}
    both, intake = reserved({"primary": large, "cascade": cascade})
    assert both == pytest.approx(cost(small) + cost(large))  # an escalated row pays both
    assert intake.cheaper_fallback() == (small, pytest.approx(cost(small)))
    with_canary, _ = reserved({"primary": large, "canary": {"version": candidate,
                                                             "share_percent": 10}})  # fmt: skip
    assert with_canary == pytest.approx(cost(large) + cost(candidate))
