"""bench.secured's run order and ratios (the runs themselves go against the real stacks)."""

from __future__ import annotations

import pytest

from bench.secured import compare, order


def run(kind: str, events: int, rate: float, cpu: float) -> dict[str, object]:
    return {"kind": kind, "events": events, "events_per_s": rate, "cpu_s_per_1k": cpu}


def test_runs_alternate_which_kind_goes_first() -> None:
    assert order(3) == ["plaintext", "secured", "secured", "plaintext", "plaintext", "secured"]


def test_ratios_per_pair_and_pooled_over_events_and_seconds() -> None:
    runs = [
        run("plaintext", 6000, 6000.0, 0.10),  # 1 s
        run("secured", 6000, 3000.0, 0.15),  # 2 s
        run("secured", 3000, 3000.0, 0.12),  # 1 s
        run("plaintext", 3000, 1000.0, 0.10),  # 3 s
    ]
    result = compare(runs)
    assert result["pairs"] == [
        {"throughput": 0.5, "cpu_per_1k": 1.5},
        {"throughput": 3.0, "cpu_per_1k": 1.2},
    ]
    # secured 9,000 events in 3 s, plaintext 9,000 in 4 s: a rate ratio, not a mean of ratios
    assert result["throughput_pooled"] == pytest.approx(4 / 3, abs=1e-3)
