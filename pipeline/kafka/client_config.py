"""The librdkafka settings every client of a worker shares (security settings will join here)."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import Settings

# librdkafka's own log lines (broker down, retries) as structured records, not raw stderr
LIBRDKAFKA_LOGGER = logging.getLogger("inferstream.librdkafka")


def client_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka_bootstrap, "logger": LIBRDKAFKA_LOGGER}
