"""Errors of routing policies and model tiers."""

from __future__ import annotations

from pipeline.errors import InferstreamError


class TierError(InferstreamError):
    """Base class: a routing policy or a tier cannot be used."""


class PolicyError(TierError):
    """A routing policy that is unreadable or invalid; the message names the file and reason."""

    exit_code = 2


class CalibrationError(TierError):
    """A cascade band cannot be calibrated for the asked target (e.g. it is unreachable)."""
