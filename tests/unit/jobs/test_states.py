"""Job states: the moves the lifecycle allows, and the state a job's counts call for."""

from __future__ import annotations

import pytest

from pipeline.jobs.exceptions import StateError
from pipeline.jobs.lifecycle import settle
from pipeline.jobs.progress import JobCounts, JobSnapshot
from pipeline.jobs.spec import JobSpec
from pipeline.jobs.states import STATES, TERMINAL, can_move, check_move, settled_state


def test_terminal_states_never_move_and_any_active_state_can_be_cancelled() -> None:
    for state in TERMINAL:
        assert all(not can_move(state, other) for other in STATES if other != state)
    for state in ("validating", "in_progress", "finalizing", "budget_exceeded"):
        assert can_move(state, "cancelled")
    assert can_move("budget_exceeded", "in_progress")  # resumed with a larger budget
    assert not can_move("validating", "completed")  # completion passes through the work
    with pytest.raises(StateError, match="a completed job cannot become in_progress"):
        check_move("completed", "in_progress")
    with pytest.raises(StateError, match="unknown job state"):
        check_move("in_progress", "paused")


@pytest.mark.parametrize(
    ("counts", "over", "expected"),
    [
        ((10, 5, 1, 0, 0), False, "in_progress"),  # 4 to go
        ((10, 9, 1, 0, 0), False, "completed"),
        ((10, 0, 10, 0, 0), False, "failed"),  # nothing could be scored
        ((10, 5, 1, 0, 0), True, "budget_exceeded"),  # reached the budget: stop admitting
        ((10, 5, 1, 4, 0), True, "budget_exceeded"),  # all accounted, some deferred
        ((10, 5, 1, 0, 4), False, "completed"),  # the cancelled ones are accounted for
    ],
)
def test_the_counts_call_for_a_state(counts: tuple, over: bool, expected: str) -> None:
    assert settled_state("in_progress", *counts, over_budget=over, cancel_requested=False) == (
        expected
    )


def test_a_cancel_wins_and_terminal_states_stay() -> None:
    assert settled_state("in_progress", 10, 1, 0, 0, 0, False, True) == "cancelled"
    assert settled_state("cancelled", 10, 10, 0, 0, 0, False, False) == "cancelled"


class FakeStore:
    def __init__(self, state: str, counts: JobCounts, budget: float | None = None) -> None:
        self.state = state
        self.counts = counts
        self.spec = JobSpec("job_x", "x", "docs", "/in", counts.total, 0, 0.01, 100, budget)
        self.moves: list[tuple[str, str]] = []

    def snapshot(self, job_id: str) -> JobSnapshot:
        return JobSnapshot(self.spec, self.state, self.counts)

    def move(self, job_id: str, expected: str, new: str) -> bool:
        if self.state != expected:
            return False
        self.moves.append((expected, new))
        self.state = new
        return True


def test_settling_a_finished_job_passes_through_finalizing() -> None:
    store = FakeStore("in_progress", JobCounts(total=3, completed=2, failed=1))
    assert settle(store, "job_x") == "completed"
    assert store.moves == [("in_progress", "finalizing"), ("finalizing", "completed")]


def test_settling_over_budget_and_a_validating_job_that_is_still_being_sent() -> None:
    store = FakeStore("in_progress", JobCounts(total=10, completed=2, tokens=500), budget=5.0)
    assert settle(store, "job_x") == "budget_exceeded"  # 500 tokens x 0.01 s = 5 model-s
    sending = FakeStore("validating", JobCounts(total=2, completed=2))
    assert settle(sending, "job_x") == "validating" and sending.moves == []
