"""The project's error classes: an `InferstreamError` is a user error, printed in one line.

`inferstream` prints any InferstreamError as `inferstream: error: <message>` and exits with its
`exit_code`; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class InferstreamError(Exception):
    """Root of the errors a user can act on; `exit_code` is the process's exit status."""

    exit_code: int = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class SettingsError(InferstreamError, ValueError):
    """An INFERSTREAM_* variable (or Settings field) that is unknown, unparsable or out of range.

    A ValueError too, so that callers which caught the old ValueError still do.
    """

    exit_code = 2
