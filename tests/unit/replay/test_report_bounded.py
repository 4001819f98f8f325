"""The replay report folds pairs in bounded memory: a reservoir for quantiles, a heap for top-k."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.replay import report as report_module
from pipeline.replay.prefetch import prefetched
from pipeline.replay.report import FieldAgreement


def test_a_field_keeps_a_fixed_number_of_deltas_and_the_exact_largest(monkeypatch):
    monkeypatch.setattr(report_module, "RESERVOIR", 1000)
    rng = np.random.default_rng(1)
    deltas = rng.exponential(1e-3, size=50_000)
    deltas[123] = 5.0  # the one that matters must not be sampled away
    field = FieldAgreement("score", numeric=True, top=3)
    for i, delta in enumerate(deltas):
        field.add(f"r{i}", 0.0, float(delta), tolerance=1e-6)
    assert len(field.deltas) == 1000 and len(field.largest) == 3
    summary = field.summary(3)
    assert summary["abs_delta"]["max"] == 5.0
    assert summary["largest"][0] == {"request_id": "r123", "served": 0.0, "replayed": 5.0,
                                     "abs_delta": 5.0}
    assert summary["quantiles_from"] == "sample of 1000"
    # a uniform sample: its median is close to the true one
    assert summary["abs_delta"]["p50"] == pytest.approx(np.median(deltas), rel=0.15)
    # the histogram counts every delta, not the sample
    assert sum(summary["delta_histogram"]["counts"]) == 50_000


def test_embeddings_compare_by_their_largest_element_delta():
    field = FieldAgreement("embedding", numeric=True)
    field.add("a", [0.1, 0.2], [0.1, 0.2], tolerance=1e-6)
    field.add("b", [0.1, 0.2], [0.1, 0.2000001], tolerance=1e-6)
    field.add("c", [0.1, 0.2], [0.1, 0.5], tolerance=1e-6)
    field.add("d", [0.1, 0.2], [0.1], tolerance=1e-6)  # sizes differ: never agree
    assert (field.identical, field.within, field.differing) == (1, 1, 2)


def test_label_lists_compare_as_rankings():
    field = FieldAgreement("top_labels", numeric=False)
    field.add("a", ["x", "y"], ["x", "y"], tolerance=0)
    field.add("b", ["x", "y"], ["y", "x"], tolerance=0)
    assert field.flips == {"x > y -> y > x": 1}


def test_read_ahead_yields_everything_in_order_and_raises_the_readers_error():
    assert list(prefetched(iter(range(100)))) == list(range(100))

    def broken():
        yield 1
        raise RuntimeError("broker went away")

    out = []
    with pytest.raises(RuntimeError, match="broker went away"):
        for item in prefetched(broken()):
            out.append(item)
    assert out == [1]


def test_a_caller_that_stops_early_stops_the_reader():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for item in prefetched(endless(), depth=2):
        if item == 3:
            break
    count = len(produced)
    assert count <= 3 + 1 + 2 + 1  # what was taken, the queue and one in hand: no more
