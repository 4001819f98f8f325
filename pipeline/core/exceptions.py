"""Errors of the plug-in contract and registry."""

from __future__ import annotations

from pipeline.errors import InferstreamError


class PluginError(InferstreamError):
    """A stream plug-in is malformed or cannot be loaded."""


class UnknownStreamError(PluginError, KeyError):
    """No plug-in of that name; the message names the ones there are."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])
