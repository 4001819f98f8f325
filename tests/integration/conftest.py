"""Fixtures for tests against the real broker and Redis (the `stack` fixture starts them)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pipeline.config import Settings
from pipeline.kafka.admin import ensure_topics
from tests.integration.helpers import WorkerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace() -> str:
    """Fresh topics and consumer group per test, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def env(stack, namespace: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        INFERSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        INFERSTREAM_REDIS_URL=stack.redis_url,
        INFERSTREAM_TOPIC_NAMESPACE=namespace,
        INFERSTREAM_APP_ID=f"inferstream-{namespace.rstrip('.')}",
        INFERSTREAM_TOPIC_PARTITIONS="4",
        INFERSTREAM_STATE_DIR=str(Settings().state_dir / "tests" / namespace.rstrip(".")),
        INFERSTREAM_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        if key.startswith("INFERSTREAM_"):
            monkeypatch.setenv(key, value)
    cfg = Settings.from_env()
    ensure_topics(cfg.kafka_bootstrap, ["fraud"], cfg.topic_partitions, 1, cfg.topic_namespace)
    return cfg


@pytest.fixture
def worker(env: dict[str, str], settings: Settings) -> Iterator[WorkerProcess]:
    process = WorkerProcess(env).start()
    yield process
    process.stop()
