"""Errors of the gateway a user can act on (one line, no traceback)."""

from __future__ import annotations

from pipeline.errors import InferstreamError


class GatewayError(InferstreamError):
    """The gateway cannot start or serve (a bad key file, no model for a stream, ...)."""


class KeyStoreError(GatewayError):
    """The API key store (Redis) is unreachable or a key name is unknown."""
