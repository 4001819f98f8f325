"""The chaos cases' private stack: its own Kafka and Redis on free ports, in a state directory
of the session, so a case may stop and restart them without touching the stack other tests
share. One stack serves every case of the session."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import stack as local_stack
from pipeline.config import Settings


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One private stack for every chaos case of the session (a broker start is the slowest
    part of a small case); each case works in topics of its own namespace."""
    rng = random.Random()
    while True:
        kafka, redis_port = rng.randrange(40000, 50000, 2), rng.randrange(50001, 60000, 2)
        if _free(kafka) and _free(kafka + 1) and _free(redis_port):
            break
    settings = dataclasses.replace(
        Settings.from_env(),
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        state_dir=tmp_path_factory.mktemp("chaos-stack") / "state",
    )
    log: list[str] = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")  # a second broker on this box
        try:
            local_stack.ensure_up(settings, log.append)
        except local_stack.StackError as exc:
            local_stack.down(settings, log.append)
            pytest.fail(f"the private stack did not start: {exc}")
        try:
            yield settings
        finally:
            local_stack.down(settings, log.append)


@pytest.fixture
def private_stack(chaos_stack: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The session's private stack, up: a case that stops Kafka or Redis and fails before it
    started them again leaves them down; the next case starts them first."""
    monkeypatch.setenv("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
    try:
        local_stack.ensure_up(chaos_stack, lambda _line: None)
    except local_stack.StackError as exc:
        pytest.fail(f"the private stack did not come back: {exc}")
    return chaos_stack


def worker_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The environment of a worker subprocess on `settings`' private stack and namespace."""
    namespace = settings.topic_namespace
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERSTREAM_")}
    env.update(
        INFERSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        INFERSTREAM_REDIS_URL=settings.redis_url,
        INFERSTREAM_TOPIC_NAMESPACE=namespace,
        INFERSTREAM_APP_ID=f"inferstream-{namespace.rstrip('.')}",
        INFERSTREAM_STATE_DIR=str(tmp_path / "worker"),
        INFERSTREAM_CACHE_DIR=str(settings.cache_dir),
        INFERSTREAM_METRICS="off",
        INFERSTREAM_LOG_LEVEL="WARNING",
    )
    return env


def report(figures: dict[str, object]) -> None:
    """One `CHAOS {...}` line on stdout (and appended to $CHAOS_REPORT when set)."""
    line = json.dumps(figures)
    print("\nCHAOS " + line)
    out = os.environ.get("CHAOS_REPORT")
    if out:
        with open(out, "a") as fh:
            fh.write(line + "\n")
