"""ModelCaller: timeout, bounded retries with backoff, one-line reasons, and an attempt over
its timeout ended rather than left running (real faulty ONNX models from tests/chaos)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.models import load_model
from pipeline.models.runtime import LoadedModel
from pipeline.scoring import model_calls
from pipeline.scoring.model_calls import ModelCaller, ModelFailed, one_line
from tests.chaos import faulty_model

REFERENCE = np.load(faulty_model.SOURCE / "reference.npy")[:200]


def with_trigger(matrix: np.ndarray, row: int = 7) -> np.ndarray:
    out = matrix.copy()
    out[row, faulty_model.TRIGGER_COLUMN] = faulty_model.TRIGGER_COUNT + 1
    return out


@pytest.fixture(scope="module")
def served() -> LoadedModel:
    return load_model(faulty_model.SOURCE)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faulty-models")
    faulty_model.build(root, "slow")
    faulty_model.build(root, "failing")
    return root


def faulty(models_dir: Path, fault: faulty_model.Fault) -> LoadedModel:
    return load_model(models_dir / "fraud" / faulty_model.VERSIONS[fault])


class Flaky:
    """A model that raises for its first `failures` calls, or blocks until `release` is set."""

    def __init__(self, failures: int = 0, block: bool = False, message: str = "boom") -> None:
        self.manifest = SimpleNamespace(version="9.9.9")
        self.failures, self.block, self.message = failures, block, message
        self.calls = 0
        self.release = threading.Event()

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.block:
            self.release.wait(30)
        if self.failures:
            self.failures -= 1
            raise RuntimeError(self.message)
        return np.ones((len(matrix), 2))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff sleeps ModelCaller takes, recorded instead of slept."""
    taken: list[float] = []
    monkeypatch.setattr(model_calls.time, "sleep", taken.append)
    return taken


def test_batches_without_a_trigger_score_as_the_served_model(
    served: LoadedModel, models_dir: Path
) -> None:
    caller = ModelCaller(5.0, 0)
    try:
        for fault in ("slow", "failing"):
            got = caller(faulty(models_dir, fault), REFERENCE)
            np.testing.assert_allclose(got, served.predict(REFERENCE), atol=1e-6)
    finally:
        caller.close()


def test_a_failing_model_is_retried_then_fails_with_one_line(
    models_dir: Path, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caller = ModelCaller(5.0, 2, backoff_s=0.05)
    model = faulty(models_dir, "failing")
    try:
        with (
            caplog.at_level(logging.WARNING, "inferstream.scoring"),
            pytest.raises(ModelFailed) as failed,
        ):
            caller(model, with_trigger(REFERENCE))
    finally:
        caller.close()
    assert failed.value.reason == "model-error"
    assert "indices element out of data bounds" in failed.value.detail
    assert failed.value.detail.startswith("model 1.0.0-failing.1: InvalidArgument: ")
    assert "\n" not in failed.value.detail
    assert len([r for r in caplog.records if "attempt" in r.getMessage()]) == 3
    assert sleeps == [0.05, 0.1], "a doubling backoff between attempts, none after the last"


def test_a_slow_model_times_out_and_its_calls_are_ended(models_dir: Path) -> None:
    caller = ModelCaller(0.3, 1, backoff_s=0.0)
    model = faulty(models_dir, "slow")
    try:
        with pytest.raises(ModelFailed) as failed:
            caller(model, with_trigger(REFERENCE))
        assert failed.value.reason == "model-timeout"
        assert failed.value.detail == "model 1.0.0-slow.1: no answer within 0.3 s"
        # both attempts held the pool's two threads in a loop of millions of matmuls; ended,
        # they leave them to the next batch, which is answered within the same timeout
        for _ in range(3):
            assert caller(model, REFERENCE).shape == (len(REFERENCE), 2)
    finally:
        caller.close()


def test_a_transient_failure_is_retried_and_the_call_answers(sleeps: list[float]) -> None:
    caller = ModelCaller(5.0, 2, backoff_s=0.5)
    model = Flaky(failures=1)
    try:
        assert caller(model, np.zeros((3, 12))).shape == (3, 2)
    finally:
        caller.close()
    assert model.calls == 2 and sleeps == [0.5]


def test_no_retries_means_one_attempt(sleeps: list[float]) -> None:
    caller = ModelCaller(5.0, 0)
    model = Flaky(failures=5, message="first line\n  second   line")
    try:
        with pytest.raises(ModelFailed) as failed:
            caller(model, np.zeros((1, 12)))
    finally:
        caller.close()
    assert model.calls == 1 and sleeps == []
    assert failed.value.detail == "model 9.9.9: RuntimeError: first line second line"


def test_a_queued_attempt_behind_hung_calls_is_cancelled_not_run_later() -> None:
    caller = ModelCaller(0.05, 2, backoff_s=0.0)
    model = Flaky(block=True)  # not an ONNX Runtime model: it cannot be terminated
    try:
        with pytest.raises(ModelFailed) as failed:
            caller(model, np.zeros((1, 12)))
        assert failed.value.reason == "model-timeout"
        model.release.set()  # the two hung attempts return now; the third never started
        caller.close()
        caller._pool.shutdown(wait=True)
    finally:
        model.release.set()
        caller.close()
    assert model.calls == 2


@pytest.mark.parametrize(
    ("timeout_s", "retries", "backoff_s"),
    [(0, 1, 0.0), (-1, 1, 0.0), (float("nan"), 1, 0.0), (1, -1, 0.0), (1, 1, -0.1)],
)
def test_bad_settings_are_refused(timeout_s: float, retries: int, backoff_s: float) -> None:
    with pytest.raises(ValueError, match="model timeout must be positive"):
        ModelCaller(timeout_s, retries, backoff_s)


def test_one_line_cuts_long_messages() -> None:
    line = one_line(ValueError("x" * 1000))
    assert len(line) == 400 and line.startswith("ValueError: xxx") and line.endswith("...")
    assert one_line(KeyError()) == "KeyError"


def test_the_breaker_refuses_calls_after_failed_batches_then_one_probe_closes_it(monkeypatch):
    from pipeline.core import breaker as breaker_module
    from pipeline.scoring.model_calls import CIRCUIT_REASON, CircuitOpen, ModelBreakers

    now = [1000.0]
    monkeypatch.setattr(breaker_module.time, "monotonic", lambda: now[0])
    breakers = ModelBreakers(failures=3, reset_s=10.0)
    caller = ModelCaller(5.0, 1, backoff_s=0.0, breakers=breakers)
    model = Flaky(failures=6)  # 3 batches x 2 attempts
    matrix = np.zeros((4, 3))
    try:
        for _ in range(3):
            with pytest.raises(ModelFailed) as failed:
                caller(model, matrix)
            assert not isinstance(failed.value, CircuitOpen)
        assert model.calls == 6 and breakers.of("9.9.9").state == "open"
        with pytest.raises(CircuitOpen) as refused:  # refused at once: no attempt, no wait
            caller(model, matrix)
        assert refused.value.reason == CIRCUIT_REASON and model.calls == 6
        assert "circuit open after 3 failed batches" in refused.value.detail
        now[0] += 10.0  # half-open: one probe batch goes to the model, and it succeeds
        assert caller(model, matrix).shape[0] == 4 and model.calls == 7
        assert breakers.of("9.9.9").state == "closed"
        assert caller(model, matrix).shape[0] == 4
        assert dict(breakers.of("9.9.9").transitions) == {
            "closed->open": 1, "open->half-open": 1, "half-open->closed": 1,
        }  # fmt: skip
    finally:
        caller.close()


def test_a_failed_probe_opens_the_breaker_again(monkeypatch):
    from pipeline.core import breaker as breaker_module
    from pipeline.scoring.model_calls import CircuitOpen, ModelBreakers

    now = [1000.0]
    monkeypatch.setattr(breaker_module.time, "monotonic", lambda: now[0])
    breakers = ModelBreakers(failures=1, reset_s=5.0)
    caller = ModelCaller(5.0, 0, breakers=breakers)
    model = Flaky(failures=2)
    try:
        with pytest.raises(ModelFailed):
            caller(model, np.zeros((1, 3)))
        now[0] += 5.0
        with pytest.raises(ModelFailed) as probe:
            caller(model, np.zeros((1, 3)))
        assert not isinstance(probe.value, CircuitOpen) and model.calls == 2
        with pytest.raises(CircuitOpen):
            caller(model, np.zeros((1, 3)))
        assert model.calls == 2
    finally:
        caller.close()
