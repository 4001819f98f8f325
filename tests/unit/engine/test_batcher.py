"""CostModel (online fit of a + b*n) and AdaptiveBatcher (the cut rule)."""

from __future__ import annotations

import math
import random

import pytest

from pipeline.engine.batcher import AdaptiveBatcher, CostModel

# Binary-exact numbers, so floor((objective - age - a) / b) has no rounding surprise.
A = 0.125
B = 1 / 1024
OBJECTIVE = 1.0


class FixedCost(CostModel):
    """A cost model with given coefficients (None: no model yet)."""

    def __init__(self, fit: tuple[float, float] | None) -> None:
        super().__init__()
        self.fit = fit

    def coefficients(self) -> tuple[float, float] | None:
        return self.fit


def _fitted(a: float, b: float, sizes: list[int], decay: float = 0.95) -> CostModel:
    model = CostModel(decay=decay)
    for n in sizes:
        model.observe(n, a + b * n)
    return model


# ---------------------------------------------------------------- CostModel


def test_recovers_a_and_b_from_noiseless_samples() -> None:
    a, b = 0.002, 0.0001
    model = _fitted(a, b, [1 + (i * 7) % 64 for i in range(60)])
    fit = model.coefficients()
    assert fit is not None
    assert fit[0] == pytest.approx(a, rel=1e-6)
    assert fit[1] == pytest.approx(b, rel=1e-6)
    assert model.predict(100) == pytest.approx(a + b * 100, rel=1e-6)


def test_recovers_a_and_b_from_few_noiseless_samples() -> None:
    a, b = 0.01, 0.003
    model = _fitted(a, b, [1, 2, 4, 8, 16])
    fit = model.coefficients()
    assert fit is not None
    assert fit == pytest.approx((a, b), rel=1e-6)


def test_recovers_a_and_b_from_noisy_samples() -> None:
    a, b = 0.005, 0.0002
    rng = random.Random(1234)
    model = CostModel(decay=0.99)
    for _ in range(3000):
        n = rng.randint(1, 256)
        model.observe(n, max(0.0, a + b * n + rng.gauss(0.0, 0.0005)))
    fit = model.coefficients()
    assert fit is not None
    assert fit[0] == pytest.approx(a, rel=0.2)
    assert fit[1] == pytest.approx(b, rel=0.05)


def test_none_before_min_samples() -> None:
    model = CostModel(min_samples=5)
    assert model.coefficients() is None
    assert model.predict(10) is None
    for n in (1, 2, 3, 4):
        model.observe(n, 0.01 + 0.001 * n)
        assert model.coefficients() is None
        assert model.predict(10) is None
    model.observe(5, 0.015)
    assert model.samples == 5
    assert model.coefficients() == pytest.approx((0.01, 0.001), rel=1e-6)


def test_min_samples_is_configurable() -> None:
    model = CostModel(min_samples=2)
    model.observe(1, 0.002)
    assert model.coefficients() is None
    model.observe(3, 0.004)
    assert model.coefficients() == pytest.approx((0.001, 0.001), rel=1e-6)


def test_constant_batch_size_gives_the_through_origin_slope() -> None:
    model = _fitted(0.01, 0.001, [32] * 20)
    fit = model.coefficients()
    assert fit is not None
    a, b = fit
    assert a == 0.0
    assert b == pytest.approx((0.01 + 0.001 * 32) / 32, rel=1e-9)


def test_constant_batch_size_with_varying_cost_is_the_weighted_mean_per_event() -> None:
    decay = 0.9
    seconds = [0.01, 0.03, 0.02, 0.05, 0.04, 0.02]
    model = CostModel(decay=decay)
    for s in seconds:
        model.observe(16, s)
    weights = [decay ** (len(seconds) - 1 - i) for i in range(len(seconds))]
    expected = sum(w * s for w, s in zip(weights, seconds, strict=True)) / (16 * sum(weights))
    fit = model.coefficients()
    assert fit is not None
    assert fit[0] == 0.0
    assert fit[1] == pytest.approx(expected, rel=1e-9)


def test_cost_falling_with_size_is_all_per_batch() -> None:
    model = CostModel()
    sizes = [1, 2, 4, 8, 16, 32]
    for n in sizes:
        model.observe(n, 0.05 - 0.001 * n)  # slope < 0: noise, not a real effect
    fit = model.coefficients()
    assert fit is not None
    a, b = fit
    assert b == 0.0
    assert a > 0
    assert min(0.05 - 0.001 * n for n in sizes) <= a <= 0.05


def test_negative_intercept_falls_back_to_through_origin() -> None:
    model = CostModel()
    for n in (20, 30, 40, 50, 60):
        model.observe(n, -0.01 + 0.001 * n)
    fit = model.coefficients()
    assert fit is not None
    a, b = fit
    assert a == 0.0
    assert b > 0
    assert a >= 0 and b >= 0


def test_coefficients_are_never_negative() -> None:
    rng = random.Random(7)
    for _ in range(50):
        model = CostModel(decay=0.8)
        for _ in range(10):
            model.observe(rng.randint(1, 50), rng.random() * 0.1)
        fit = model.coefficients()
        assert fit is not None
        assert fit[0] >= 0 and fit[1] >= 0


def test_recent_batches_weigh_most() -> None:
    model = _fitted(0.01, 0.001, [1 + i % 50 for i in range(300)])
    for i in range(300):  # the cost per event doubled (e.g. a slower model version)
        n = 1 + i % 50
        model.observe(n, 0.01 + 0.002 * n)
    fit = model.coefficients()
    assert fit is not None
    assert fit == pytest.approx((0.01, 0.002), rel=1e-3)


@pytest.mark.parametrize(
    ("n", "seconds"),
    [(0, 0.01), (-3, 0.01), (5, -0.001), (5, math.nan), (5, math.inf), (5, -math.inf)],
)
def test_invalid_observations_are_ignored(n: int, seconds: float) -> None:
    model = _fitted(0.01, 0.001, [1, 2, 3, 4, 5])
    before = model.coefficients()
    model.observe(n, seconds)
    assert model.samples == 5
    assert model.coefficients() == before


def test_zero_seconds_is_a_valid_observation() -> None:
    model = CostModel(min_samples=1)
    model.observe(4, 0.0)
    assert model.samples == 1
    assert model.coefficients() == (0.0, 0.0)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_invalid_decay_raises(decay: float) -> None:
    with pytest.raises(ValueError):
        CostModel(decay=decay)


# ---------------------------------------------------------------- AdaptiveBatcher


def test_no_model_caps_at_batch_max() -> None:
    batcher = AdaptiveBatcher(batch_max=100, objective_s=OBJECTIVE)
    assert batcher.cost.coefficients() is None
    assert batcher.cap(0.0) == 100
    assert batcher.cap(10.0) == 100
    assert batcher.cut(250, 0.0) == (100, "full")
    assert batcher.cut(3, 0.0) == (3, "idle")


def test_idle_takes_everything_waiting_when_fewer_than_the_cap() -> None:
    batcher = AdaptiveBatcher(batch_max=1000, objective_s=OBJECTIVE, cost=FixedCost((A, B)))
    assert batcher.cap(0.25) == 640
    assert batcher.cut(1, 0.25) == (1, "idle")
    assert batcher.cut(639, 0.25) == (639, "idle")


def test_full_when_the_cap_is_batch_max() -> None:
    batcher = AdaptiveBatcher(batch_max=500, objective_s=OBJECTIVE, cost=FixedCost((A, B)))
    assert batcher.cap(0.25) == 500  # the objective would allow 640
    assert batcher.cut(600, 0.25) == (500, "full")
    assert batcher.cut(500, 0.25) == (500, "full")
    assert batcher.cut(499, 0.25) == (499, "idle")


def test_deadline_cuts_at_the_objective_cap() -> None:
    batcher = AdaptiveBatcher(batch_max=1000, objective_s=OBJECTIVE, cost=FixedCost((A, B)))
    for age in (0.0, 0.25, 0.5, 0.75, 0.87):
        expected = math.floor((OBJECTIVE - age - A) / B)
        assert 1 <= expected < 1000
        assert batcher.cap(age) == expected
        assert batcher.cut(expected + 1, age) == (expected, "deadline")
        assert batcher.cut(5000, age) == (expected, "deadline")


def test_deadline_cap_of_one() -> None:
    batcher = AdaptiveBatcher(batch_max=1000, objective_s=OBJECTIVE, cost=FixedCost((A, B)))
    age = OBJECTIVE - A - 1.5 * B  # room for one event, not two
    assert batcher.cap(age) == 1
    assert batcher.cut(10, age) == (1, "deadline")


def test_deadline_with_a_fitted_model() -> None:
    model = _fitted(0.004, 0.0005, [1 + (i * 13) % 200 for i in range(40)])
    fit = model.coefficients()
    assert fit is not None
    a, b = fit
    batcher = AdaptiveBatcher(batch_max=512, objective_s=0.1, cost=model)
    expected = math.floor((0.1 - 0.03 - a) / b)
    assert expected == pytest.approx((0.1 - 0.03 - 0.004) / 0.0005, abs=1)
    assert 1 <= expected < 512
    assert batcher.cut(1000, 0.03) == (expected, "deadline")


def test_backlog_takes_batch_max_once_the_oldest_cannot_make_the_objective() -> None:
    batcher = AdaptiveBatcher(batch_max=1000, objective_s=OBJECTIVE, cost=FixedCost((A, B)))
    for age in (OBJECTIVE - A - 0.5 * B, OBJECTIVE - A, 0.95, OBJECTIVE, 5.0):
        assert batcher.cap(age) == 1000
        assert batcher.cut(5000, age) == (1000, "full")
        assert batcher.cut(20, age) == (20, "idle")


def test_backlog_when_per_batch_cost_alone_exceeds_the_objective() -> None:
    batcher = AdaptiveBatcher(batch_max=64, objective_s=0.05, cost=FixedCost((0.2, 0.001)))
    assert batcher.cap(0.0) == 64
    assert batcher.cut(100, 0.0) == (64, "full")


def test_no_per_event_cost_caps_at_batch_max() -> None:
    batcher = AdaptiveBatcher(batch_max=64, objective_s=1.0, cost=FixedCost((0.01, 0.0)))
    assert batcher.cap(0.5) == 64
    assert batcher.cut(100, 0.5) == (64, "full")


def test_cap_grows_as_the_oldest_age_falls() -> None:
    batcher = AdaptiveBatcher(batch_max=1000, objective_s=OBJECTIVE, cost=FixedCost((A, B)))
    ages = [0.87, 0.8, 0.6, 0.4, 0.2, 0.1, 0.0]  # within the objective, falling
    caps = [batcher.cap(age) for age in ages]
    assert caps == sorted(caps)
    assert len(set(caps)) == len(caps)  # strictly growing
    assert caps[0] < 1000


def test_cap_grows_as_cost_falls() -> None:
    caps = []
    for b in (B * 8, B * 4, B * 2, B):  # the per-event cost falls
        batcher = AdaptiveBatcher(batch_max=10_000, objective_s=OBJECTIVE, cost=FixedCost((A, b)))
        caps.append(batcher.cap(0.25))
    assert caps == [80, 160, 320, 640]
    caps = []
    for a in (0.5, 0.25, 0.125, 0.0):  # the per-batch cost falls
        batcher = AdaptiveBatcher(batch_max=10_000, objective_s=OBJECTIVE, cost=FixedCost((a, B)))
        caps.append(batcher.cap(0.25))
    assert caps == [256, 512, 640, 768]


def test_cap_grows_as_the_fitted_cost_falls() -> None:
    model = _fitted(0.01, 0.002, [1 + i % 40 for i in range(100)])
    batcher = AdaptiveBatcher(batch_max=10_000, objective_s=0.5, cost=model)
    slow = batcher.cap(0.1)
    for i in range(300):  # the handler got faster per event
        n = 1 + i % 40
        batcher.observe(n, 0.01 + 0.0005 * n)
    fast = batcher.cap(0.1)
    assert slow < fast
    assert slow == pytest.approx((0.5 - 0.1 - 0.01) / 0.002, abs=2)
    assert fast == pytest.approx((0.5 - 0.1 - 0.01) / 0.0005, abs=8)


def test_observe_feeds_the_cost_model() -> None:
    batcher = AdaptiveBatcher(batch_max=100, objective_s=1.0)
    for n in (1, 2, 3, 4, 5):
        batcher.observe(n, 0.01 + 0.001 * n)
    assert batcher.cost.samples == 5
    assert batcher.cost.coefficients() == pytest.approx((0.01, 0.001), rel=1e-6)


def test_cut_never_exceeds_waiting_or_batch_max() -> None:
    batcher = AdaptiveBatcher(batch_max=300, objective_s=OBJECTIVE, cost=FixedCost((A, B)))
    for waiting in (1, 2, 50, 299, 300, 301, 10_000):
        for age in (0.0, 0.3, 0.6, 0.86, 0.9, 3.0):
            n, reason = batcher.cut(waiting, age)
            assert 1 <= n <= min(waiting, 300)
            assert reason in ("idle", "full", "deadline")
            if reason == "idle":
                assert n == waiting
            if reason == "full":
                assert n == 300


@pytest.mark.parametrize("batch_max", [0, -1])
def test_invalid_batch_max_raises(batch_max: int) -> None:
    with pytest.raises(ValueError):
        AdaptiveBatcher(batch_max=batch_max, objective_s=1.0)


@pytest.mark.parametrize("objective", [0.0, -0.1])
def test_invalid_objective_raises(objective: float) -> None:
    with pytest.raises(ValueError):
        AdaptiveBatcher(batch_max=10, objective_s=objective)


@pytest.mark.parametrize("waiting", [0, -5])
def test_cut_with_nothing_waiting_raises(waiting: int) -> None:
    batcher = AdaptiveBatcher(batch_max=10, objective_s=1.0)
    with pytest.raises(ValueError):
        batcher.cut(waiting, 0.0)


def test_a_window_of_weighted_events_stops_before_its_cost_passes_the_budget() -> None:
    from pipeline.core.messages import InboundMessage
    from pipeline.engine.consumer_loop import _within_cost

    def event(size: int) -> InboundMessage:
        return InboundMessage("t", 0, 0, 0, None, b"x" * size, [])

    buffer = [event(100), event(100), event(500), event(10)]
    assert _within_cost(buffer, 4, "idle", len, 250) == (2, "full")
    assert _within_cost(buffer, 4, "idle", len, 10_000) == (4, "idle")
    # one event over the budget still goes: alone, never stuck
    assert _within_cost([event(900), event(1)], 2, "idle", len, 250) == (1, "full")
