"""Hypothesis profiles of the fuzz targets: a few thousand inputs in `make test` ("ci", 500
per property), >= 100,000 per target under `make fuzz` ("fuzz", 20,000 per property,
HYPOTHESIS_PROFILE=fuzz).

Every example has a deadline (a decoder that takes seconds over a few KB is a hang in the
making; hypothesis re-runs an example before calling it slow, so one busy moment on shared
cores is not a failure), and pytest-timeout stops a real hang."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": timedelta(seconds=2),
    "database": None,  # nothing written into the tree; a failure prints its reproduction blob
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=500, **_COMMON)
# per property; a target has 5-6 of them, so >= 100,000 inputs per target (codec, reader)
settings.register_profile("fuzz", max_examples=20_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: a hypothesis fuzz target (make fuzz runs it long)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    long_run = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
    for item in items:
        if "tests/fuzz/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.fuzz)
            item.add_marker(pytest.mark.timeout(3600 if long_run else 300))
