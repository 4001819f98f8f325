"""Errors of a replay request: each names the problem and what is available."""

from __future__ import annotations

from pipeline.errors import InferstreamError


class ReplayError(InferstreamError):
    """A range that cannot be replayed (empty, reversed, in the future, expired, unknown)."""

    exit_code = 2
