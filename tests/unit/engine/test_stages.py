"""StagePipeline: stages on their own threads, batches in order, backpressure, drain, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.core.batch import Batch
from pipeline.core.handler import Stage
from pipeline.engine.stages import StagePipeline

# A last resort: submit() and close() have no timeout of their own, so the tests call them
# through _bounded(), which fails the test instead of blocking it.
pytestmark = pytest.mark.timeout(60)

WAIT = 5.0  # generous bound on anything that should happen "soon"; only a bug reaches it
SHORT = 0.2  # how long to watch something that should not happen


def _bounded(call: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Run `call` on a daemon thread; fail if it has not returned within `timeout`."""
    thread = threading.Thread(target=call, name=f"test-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{what} blocked for {timeout} s"


def _submit(pipeline: StagePipeline, batch: Batch) -> None:
    _bounded(lambda: pipeline.submit(batch), f"submit of batch {batch.seq}")


def _close(pipeline: StagePipeline) -> None:
    _bounded(pipeline.close, "close", timeout=20)


def _batch(seq: int) -> Batch:
    return Batch(
        seq=seq,
        messages=[],
        cut="idle",
        wait_ms=0.0,
        cut_at=time.monotonic(),
        last_offsets={("events", 0): seq},
    )


class Recorder:
    """on_done / on_error callbacks that remember what they were called with."""

    def __init__(self) -> None:
        self.done: list[Batch] = []
        self.errors: list[tuple[str, BaseException]] = []
        self.lock = threading.Lock()
        self.error_seen = threading.Event()

    def on_done(self, batch: Batch) -> None:
        with self.lock:
            self.done.append(batch)

    def on_error(self, message: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append((message, exc))
        self.error_seen.set()


@pytest.fixture
def pipelines() -> Iterator[Callable[..., StagePipeline]]:
    """Build pipelines and close each at the end (after the test released any blocked stage)."""
    made: list[StagePipeline] = []

    def make(stages: list[Stage], rec: Recorder, name: str = "test") -> StagePipeline:
        pipeline = StagePipeline(name, stages, rec.on_done, rec.on_error)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        _close(pipeline)


def _feed(pipeline: StagePipeline, batches: list[Batch]) -> None:
    for batch in batches:
        assert pipeline.acquire(WAIT), f"stage 0 never freed up for batch {batch.seq}"
        _submit(pipeline, batch)


def test_needs_at_least_one_stage() -> None:
    rec = Recorder()
    with pytest.raises(ValueError):
        StagePipeline("empty", [], rec.on_done, rec.on_error)


def test_batches_flow_through_every_stage_in_order(
    pipelines: Callable[..., StagePipeline],
) -> None:
    seen: dict[str, list[int]] = {"decode": [], "score": [], "deliver": []}

    def stage(name: str) -> Stage:
        def run(value: Any) -> Any:
            batch = value if isinstance(value, Batch) else value[0]
            seen[name].append(batch.seq)
            return (batch, name)

        return Stage(name, run)

    rec = Recorder()
    pipeline = pipelines([stage("decode"), stage("score"), stage("deliver")], rec)
    batches = [_batch(i) for i in range(50)]
    _feed(pipeline, batches)
    assert pipeline.drain(WAIT)
    expected = list(range(50))
    assert seen == {"decode": expected, "score": expected, "deliver": expected}
    assert [b.seq for b in rec.done] == expected
    assert rec.errors == []


def test_each_stage_receives_the_previous_stages_return_value(
    pipelines: Callable[..., StagePipeline],
) -> None:
    received: list[tuple[str, Any]] = []

    def first(batch: Batch) -> tuple[str, int]:
        received.append(("first", batch))
        return ("decoded", batch.seq)

    def second(value: tuple[str, int]) -> list[int]:
        received.append(("second", value))
        return [value[1], value[1] * 10]

    def third(value: list[int]) -> None:
        received.append(("third", value))

    rec = Recorder()
    pipeline = pipelines([Stage("a", first), Stage("b", second), Stage("c", third)], rec)
    batch = _batch(7)
    _feed(pipeline, [batch])
    assert pipeline.drain(WAIT)
    assert received == [("first", batch), ("second", ("decoded", 7)), ("third", [7, 70])]
    assert rec.done == [batch]  # on_done gets the batch, not the last stage's return value


def test_acquire_is_false_while_stage_zero_holds_a_batch(
    pipelines: Callable[..., StagePipeline],
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(batch: Batch) -> Batch:
        entered.set()
        assert release.wait(WAIT)
        return batch

    rec = Recorder()
    pipeline = pipelines([Stage("first", slow), Stage("second", lambda v: v)], rec)
    assert pipeline.acquire(WAIT)
    _submit(pipeline, _batch(1))
    assert entered.wait(WAIT)
    assert not pipeline.acquire(SHORT)
    release.set()
    assert pipeline.acquire(WAIT)  # stage 0 handed the batch on
    pipeline.release()  # an acquire not followed by a submit
    assert pipeline.drain(WAIT)
    assert [b.seq for b in rec.done] == [1]
    assert pipeline.acquire(WAIT)  # the released acquire is available again
    pipeline.release()


def test_single_stage_acquire_waits_for_the_stage(
    pipelines: Callable[..., StagePipeline],
) -> None:
    entered, release = threading.Event(), threading.Event()

    def only(batch: Batch) -> None:
        entered.set()
        assert release.wait(WAIT)

    rec = Recorder()
    pipeline = pipelines([Stage("only", only)], rec)
    _feed(pipeline, [_batch(1)])
    assert entered.wait(WAIT)
    assert not pipeline.acquire(SHORT)
    release.set()
    assert pipeline.acquire(WAIT)
    pipeline.release()
    assert pipeline.drain(WAIT)
    assert [b.seq for b in rec.done] == [1]


@pytest.mark.parametrize("n_stages", [1, 2, 3, 4])
def test_backpressure_from_a_blocked_last_stage(
    pipelines: Callable[..., StagePipeline], n_stages: int
) -> None:
    unblock = threading.Event()
    reached_last: list[int] = []

    def last(batch: Batch) -> None:
        reached_last.append(batch.seq)
        assert unblock.wait(WAIT * 2)

    stages = [Stage(f"s{i}", lambda v: v) for i in range(n_stages - 1)] + [Stage("last", last)]
    rec = Recorder()
    pipeline = pipelines(stages, rec)
    limit = 2 * n_stages - 1  # one batch in each stage and one in each inbox between two

    taken = 0
    try:
        for seq in range(limit + 3):
            if not pipeline.acquire(WAIT if seq < limit else SHORT * 2):
                break
            _submit(pipeline, _batch(seq))
            taken += 1
        assert taken == limit
        assert pipeline.in_flight == limit
        assert rec.done == []
        assert not pipeline.acquire(SHORT)  # stays false
        assert reached_last == [0]  # the last stage is stuck on the first batch
    finally:
        unblock.set()
    assert pipeline.drain(WAIT)
    assert [b.seq for b in rec.done] == list(range(limit))
    assert pipeline.in_flight == 0
    assert pipeline.acquire(WAIT)  # free again once the jam cleared
    pipeline.release()


def test_drain_true_when_everything_finished(pipelines: Callable[..., StagePipeline]) -> None:
    def work(value: Any) -> Any:
        time.sleep(0.001)
        return value

    rec = Recorder()
    pipeline = pipelines([Stage("a", work), Stage("b", work)], rec)
    assert pipeline.drain(SHORT)  # nothing submitted: already drained
    _feed(pipeline, [_batch(i) for i in range(20)])
    assert pipeline.drain(WAIT)
    assert pipeline.in_flight == 0
    assert len(rec.done) == 20


def test_drain_false_on_timeout_with_a_stuck_stage(
    pipelines: Callable[..., StagePipeline],
) -> None:
    unblock = threading.Event()

    def stuck(value: Any) -> Any:
        assert unblock.wait(WAIT * 2)
        return value

    rec = Recorder()
    pipeline = pipelines([Stage("a", lambda v: v), Stage("stuck", stuck)], rec)
    _feed(pipeline, [_batch(1), _batch(2)])
    try:
        started = time.monotonic()
        assert not pipeline.drain(SHORT)
        assert time.monotonic() - started < WAIT  # it did return, on its timeout
        assert pipeline.in_flight == 2
        assert rec.done == []
    finally:
        unblock.set()
    assert pipeline.drain(WAIT)
    assert [b.seq for b in rec.done] == [1, 2]


def test_drain_wakes_up_as_soon_as_the_last_batch_is_done(
    pipelines: Callable[..., StagePipeline],
) -> None:
    unblock = threading.Event()

    def stuck(value: Any) -> Any:
        assert unblock.wait(WAIT * 2)
        return value

    rec = Recorder()
    pipeline = pipelines([Stage("a", lambda v: v), Stage("stuck", stuck)], rec)
    _feed(pipeline, [_batch(1)])
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(pipeline.drain(600)), daemon=True)
    waiter.start()
    waiter.join(SHORT)
    assert waiter.is_alive()  # still waiting on the stuck batch
    unblock.set()
    waiter.join(WAIT)  # far less than drain's own timeout: it was notified
    assert not waiter.is_alive()
    assert result == [True]


def test_busy_s_and_stage_s_are_filled_in(pipelines: Callable[..., StagePipeline]) -> None:
    naps = {"decode": 0.01, "score": 0.02, "deliver": 0.005}

    def stage(name: str) -> Stage:
        def run(value: Any) -> Any:
            time.sleep(naps[name])
            return value

        return Stage(name, run)

    rec = Recorder()
    pipeline = pipelines([stage(name) for name in naps], rec)
    batches = [_batch(1), _batch(2)]
    _feed(pipeline, batches)
    assert pipeline.drain(WAIT)
    for batch in batches:
        assert set(batch.stage_s) == set(naps)
        for name, nap in naps.items():
            assert batch.stage_s[name] >= nap * 0.9  # slept at least that long
        assert batch.busy_s == pytest.approx(sum(batch.stage_s.values()), rel=1e-9)
        assert batch.busy_s >= sum(naps.values()) * 0.9


def test_busy_s_adds_to_what_the_batch_already_had(
    pipelines: Callable[..., StagePipeline],
) -> None:
    rec = Recorder()
    pipeline = pipelines([Stage("a", lambda v: v)], rec)
    batch = _batch(1)
    batch.busy_s = 1.5
    _feed(pipeline, [batch])
    assert pipeline.drain(WAIT)
    assert batch.busy_s >= 1.5
    assert batch.busy_s == pytest.approx(1.5 + batch.stage_s["a"], rel=1e-9)


def test_on_done_once_per_batch_in_order(pipelines: Callable[..., StagePipeline]) -> None:
    def jitter(batch: Batch) -> Batch:
        time.sleep(0.002 if batch.seq % 3 == 0 else 0.0)
        return batch

    rec = Recorder()
    pipeline = pipelines([Stage("a", jitter), Stage("b", jitter), Stage("c", lambda v: v)], rec)
    batches = [_batch(i) for i in range(40)]
    _feed(pipeline, batches)
    assert pipeline.drain(WAIT)
    assert [b.seq for b in rec.done] == list(range(40))
    assert [id(b) for b in rec.done] == [id(b) for b in batches]
    assert len({id(b) for b in rec.done}) == 40


def test_a_failing_stage_reports_the_error_and_its_batch_is_never_done(
    pipelines: Callable[..., StagePipeline],
) -> None:
    boom = RuntimeError("model exploded")

    def score(batch: Batch) -> Batch:
        if batch.seq == 2:
            raise boom
        return batch

    rec = Recorder()
    pipeline = pipelines([Stage("decode", lambda v: v), Stage("score", score)], rec, "scorer")
    _feed(pipeline, [_batch(1), _batch(2)])
    assert rec.error_seen.wait(WAIT)
    assert not pipeline.drain(SHORT)  # batch 2 stays in flight
    assert [b.seq for b in rec.done] == [1]
    assert len(rec.errors) == 1
    message, exc = rec.errors[0]
    assert exc is boom
    assert "score" in message
    assert "scorer" in message
    assert pipeline.in_flight == 1


def test_a_failing_first_stage_reports_the_error_and_nothing_is_done() -> None:
    boom = ValueError("undecodable")

    def decode(batch: Batch) -> Batch:
        raise boom

    reached: list[Any] = []
    rec = Recorder()
    # Not closed: with stage 0's thread gone, close() could not stop the stage after it (it
    # would wait 5 s on that thread); the engine treats a stage failure as fatal and never
    # closes the pipeline then. The idle daemon thread left behind is harmless.
    pipeline = StagePipeline(
        "p", [Stage("decode", decode), Stage("deliver", reached.append)], rec.on_done, rec.on_error
    )
    _feed(pipeline, [_batch(1)])
    assert rec.error_seen.wait(WAIT)
    assert [exc for _, exc in rec.errors] == [boom]
    assert not pipeline.drain(SHORT)
    assert rec.done == []
    assert reached == []


def test_on_done_raising_is_reported(pipelines: Callable[..., StagePipeline]) -> None:
    rec = Recorder()
    boom = RuntimeError("tracker broke")

    def on_done(batch: Batch) -> None:
        raise boom

    pipeline = StagePipeline("p", [Stage("a", lambda v: v)], on_done, rec.on_error)
    try:
        _feed(pipeline, [_batch(1)])
        assert rec.error_seen.wait(WAIT)
        assert [exc for _, exc in rec.errors] == [boom]
        assert not pipeline.drain(SHORT)
    finally:
        _close(pipeline)


def test_close_stops_every_stage_thread() -> None:
    rec = Recorder()
    stages = [Stage(f"s{i}", lambda v: v) for i in range(3)]
    pipeline = StagePipeline("closing", stages, rec.on_done, rec.on_error)
    _feed(pipeline, [_batch(1), _batch(2)])
    assert pipeline.drain(WAIT)
    _close(pipeline)
    assert not any(thread.is_alive() for thread in pipeline._threads)
    assert [b.seq for b in rec.done] == [1, 2]
