"""Moving a job to the state its counts call for: what the tracker does after each batch and
`submit` does once its documents are sent (a job whose outputs all came before that)."""

from __future__ import annotations

from typing import Protocol

from pipeline.jobs.progress import JobSnapshot
from pipeline.jobs.states import settled_state


class StateStore(Protocol):
    def snapshot(self, job_id: str) -> JobSnapshot | None: ...

    def move(self, job_id: str, expected: str, new: str) -> bool: ...


def over_budget(snapshot: JobSnapshot) -> bool:
    spec = snapshot.spec
    budget = getattr(spec, "budget", None)
    spt = getattr(spec, "seconds_per_token", 0.0)
    return budget is not None and snapshot.counts.cost(spt) >= budget


def settle(store: StateStore, job_id: str) -> str | None:
    """Move the job as far as its counts allow; its state afterwards (None: unknown/down).

    Only a job that is in progress (or waiting for budget) moves: a validating job is still
    being sent, and terminal states stay. Completion passes through `finalizing`."""
    snapshot = store.snapshot(job_id)
    if snapshot is None:
        return None
    current = snapshot.state
    if current not in ("in_progress", "budget_exceeded", "finalizing"):
        return current
    c = snapshot.counts
    target = settled_state(
        current, c.total, c.completed, c.failed, c.deferred, c.cancelled,
        over_budget(snapshot), cancel_requested=False,
    )  # fmt: skip
    if target == current:
        return current
    if target in ("completed", "failed") and current != "finalizing":
        if not store.move(job_id, current, "finalizing"):  # moved meanwhile (a cancel)
            again = store.snapshot(job_id)
            return None if again is None else again.state
        current = "finalizing"
    if store.move(job_id, current, target):
        return target
    again = store.snapshot(job_id)
    return None if again is None else again.state
