"""docker-compose.yml and the Dockerfile agree with the local stack (no Docker needed)."""

from __future__ import annotations

import re

from pipeline.config import REPO_ROOT, Settings
from pipeline.stack.kafka import KAFKA_VERSION, parse_bootstrap
from pipeline.stack.redis import parse_redis_url

COMPOSE = (REPO_ROOT / "docker-compose.yml").read_text()


def test_same_kafka_version_as_the_local_stack() -> None:
    assert re.search(r"image:\s*apache/kafka:(\S+)", COMPOSE).group(1) == KAFKA_VERSION  # type: ignore[union-attr]


def test_host_ports_are_the_settings_defaults() -> None:
    _, kafka_port = parse_bootstrap(Settings.kafka_bootstrap)
    _, redis_port = parse_redis_url(Settings.redis_url)
    assert f'"127.0.0.1:{kafka_port}:{kafka_port}"' in COMPOSE
    assert f"HOST://127.0.0.1:{kafka_port}" in COMPOSE
    assert f'"127.0.0.1:{redis_port}:{redis_port}"' in COMPOSE


def test_worker_image_and_command() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    # a plain install: the wheel build copies schemas/, models/ and ops/ into the package
    assert "pip install '.[cpu]'" in dockerfile
    for needed in ("setup.py", "MANIFEST.in", "schemas", "models", "ops"):
        assert f"COPY {needed}" in dockerfile or f" {needed} " in dockerfile, needed
    assert 'command: ["inferstream", "worker", "--streams", "fraud"]' in COMPOSE
    assert 'command: ["inferstream", "topics", "ensure"]' in COMPOSE
