"""Structured logs: one JSON object per line on stderr, WARNING and up unless asked for more."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(level: str = "WARNING") -> dict[str, Any]:
    """A dictConfig for the worker (Faust applies it) and the CLI alike."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def configure(level: str = "WARNING") -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level))


def lifecycle_event(event: str, msg: str, **fields: Any) -> None:
    """A line that always shows (ready, stopping), whatever the level, in the same JSON shape.

    Written directly: Faust's worker re-applies log levels after our config, so a per-logger
    level would not survive it.
    """
    import sys

    record = logging.LogRecord("inferstream.lifecycle", logging.INFO, "", 0, msg, (), None)
    record.__dict__.update(event=event, **fields)
    sys.stderr.write(JsonFormatter().format(record) + "\n")
    sys.stderr.flush()
