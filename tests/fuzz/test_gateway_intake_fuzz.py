"""Fuzzing the gateway's request parser (`StreamIntake.check`, what POST /v1/... runs on the
parsed JSON body): arbitrary JSON values and schema-shaped records with arbitrary values. A
submission is either accepted whole (every record, each encodable as the producer encodes it)
or refused with one-line reasons that point at its items; nothing else escapes."""

from __future__ import annotations

import io
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.codec import registry_from_settings
from pipeline.config import Settings
from pipeline.core.registry import get_plugin
from pipeline.gateway.intake import StreamIntake
from pipeline.redis.client import DegradingRedis
from tests.fuzz.test_request_files_fuzz import JSON, records

SETTINGS = Settings(redis_url="redis://127.0.0.1:1/0")  # never reached: check() needs no Redis
REGISTRY = registry_from_settings(SETTINGS)
INTAKE = StreamIntake(
    SETTINGS, get_plugin("fraud"), REGISTRY, DegradingRedis(SETTINGS, timeout_s=0.01)
)


# two properties for this target: 2.5x the profile's examples each, so that `make fuzz` gives
# it >= 100,000 inputs as well
EXAMPLES = settings.default.max_examples * 5 // 2


def check(items: list[Any]) -> None:
    checked = INTAKE.check(items, "tenant-a")
    if checked.problems:
        assert not checked.records
        for problem in checked.problems:
            assert 0 <= problem.index < len(items)
            assert problem.reason and "\n" not in problem.reason, problem
    else:
        assert len(checked.records) == len(items) == len(checked.hashes)
        for record in checked.records:
            fastavro.schemaless_writer(io.BytesIO(), INTAKE.schema.parsed, record, strict=True)


@settings(max_examples=EXAMPLES)
@given(st.lists(JSON, max_size=5))
def test_arbitrary_json_items(items: list[Any]) -> None:
    check(items)


@settings(max_examples=EXAMPLES)
@given(st.lists(records(), min_size=1, max_size=5))
def test_schema_shaped_records_with_arbitrary_values(items: list[dict[str, Any]]) -> None:
    check(items)
