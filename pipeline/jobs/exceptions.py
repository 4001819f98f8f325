"""Errors of the jobs commands: each a user error, printed as one line."""

from __future__ import annotations

from pipeline.errors import InferstreamError


class JobError(InferstreamError):
    """A job cannot do what was asked (cancelled, nothing to resume, store unavailable)."""


class JobNotFound(JobError):
    exit_code = 2

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} (see `inferstream jobs list`)")
        self.job_id = job_id


class JobInputError(JobError):
    """The input as a whole is unusable (missing, unreadable, empty); bad lines are not this."""

    exit_code = 2


class StateError(JobError):
    """A state transition the job's lifecycle does not allow."""
