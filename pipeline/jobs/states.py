"""Job states, as the OpenAI Batch API names them, plus `budget_exceeded`, and their moves.

    validating -> in_progress -> finalizing -> completed
         |             |  ^
         v             v  |  (resume / submit again with a larger budget)
       failed     budget_exceeded
    any non-terminal state -> cancelled

`failed` is a job none of whose documents could be scored (every line bad, or every document
dead-lettered). Terminal states never move again, except that a completed job's record can be
written again (idempotent) by a tracker that rebuilt it.
"""

from __future__ import annotations

import typing
from typing import Literal

from pipeline.jobs.exceptions import StateError

JobState = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "cancelled",
    "budget_exceeded",
]
STATES: tuple[str, ...] = typing.get_args(JobState)
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
# states in which the job's documents are still being scored or counted
ACTIVE: frozenset[str] = frozenset({"validating", "in_progress", "finalizing"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "validating": frozenset({"in_progress", "failed", "cancelled"}),
    "in_progress": frozenset({"finalizing", "budget_exceeded", "failed", "cancelled"}),
    "budget_exceeded": frozenset({"in_progress", "finalizing", "cancelled"}),
    "finalizing": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}


def can_move(current: str, new: str) -> bool:
    return current == new or new in TRANSITIONS.get(current, frozenset())


def check_move(current: str, new: str) -> str:
    """`new` when the lifecycle allows `current -> new`; a StateError naming both otherwise."""
    if new not in STATES:
        raise StateError(f"unknown job state {new!r}; states: {', '.join(STATES)}")
    if not can_move(current, new):
        raise StateError(f"a {current} job cannot become {new}")
    return new


def settled_state(
    current: str,
    total: int,
    completed: int,
    failed: int,
    deferred: int,
    cancelled: int,
    over_budget: bool,
    cancel_requested: bool,
) -> str:
    """The state the counts call for (what the tracker moves a job to after a batch).

    Every document accounted for: completed (or failed when none completed), cancelled when
    the job was cancelled, budget_exceeded while documents wait for more budget. Otherwise the
    job stays where it is, except that reaching the budget moves it to budget_exceeded."""
    if current in TERMINAL:
        return current
    if cancel_requested:
        return "cancelled"
    accounted = completed + failed + deferred + cancelled
    if total and accounted >= total:
        if deferred:
            return "budget_exceeded"
        return "completed" if completed else "failed"
    if over_budget and current == "in_progress":
        return "budget_exceeded"
    return current
