"""Fixtures for tests against the real broker and Redis (the `stack` fixture starts them)."""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from pipeline import stack as local_stack
from pipeline.config import Settings
from pipeline.kafka.admin import ensure_topics
from tests.integration.helpers import KafkaNames, WorkerProcess

pytestmark = pytest.mark.integration

# Fixed names some tests use instead of a namespace of their own: `inferstream demo` without
# INFERSTREAM_TOPIC_NAMESPACE / INFERSTREAM_APP_ID works in `demo.*` with groups
# `inferstream-demo*` (test_demo.py). Deleted at the end only where the session created them.
FIXED_PREFIXES = ("demo.", "inferstream-demo")
TEST_SUBJECT = re.compile(r"^t[0-9a-f]{8}\.")  # `<namespace fixture's topic>-value`


@pytest.fixture(scope="session")
def kafka_names(stack, request: pytest.FixtureRequest) -> Iterator[KafkaNames]:
    """What the session creates on the broker, deleted when it ends (unless --keep-topics):
    the broker may outlive the session (it was running already, it is shared, --keep-stack,
    or its next start reuses the data directory), and the tests' topics would pile up there."""
    names = KafkaNames(stack.bootstrap)
    for prefix in FIXED_PREFIXES:
        names.track_if_new(prefix)
    yield names
    if request.config.getoption("--keep-topics"):
        return
    try:
        report = names.cleanup()
    except KafkaException as exc:  # e.g. the broker was stopped by whoever started it
        _log(f"could not delete the session's topics and consumer groups: {exc}")
        return
    _log(
        f"deleted the session's {len(report.topics)} topics and "
        f"{len(report.groups)} consumer groups"
    )
    for left in report.left:
        _log(f"not deleted: {left}")


def _log(message: str) -> None:
    print(f"[stack] {message}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def schema_registry(stack, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a real Schema Registry (Apicurio, pipeline/stack/registry.py), up for the
    session: started like Kafka and Redis when nothing answers at INFERSTREAM_SCHEMA_REGISTRY_URL
    (default http://127.0.0.1:18081/apis/ccompat/v7), stopped at the end unless --keep-stack or
    another session still uses it. Not put in os.environ: tests opt in to registry mode through
    their `env` (tests/integration/test_registry*.py)."""
    keep = bool(request.config.getoption("--keep-stack"))
    try:
        with local_stack.session(
            Settings.from_env(), log=_log, keep=keep, services=("registry",)
        ) as info:
            before = set(_subjects(info.registry_url))
            yield info.registry_url
            if not request.config.getoption("--keep-topics"):
                _delete_test_subjects(info.registry_url, before)
    except local_stack.StackError as exc:
        pytest.fail(f"the local Schema Registry did not come up: {exc}", pytrace=False)


def _subjects(url: str) -> list[str]:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient({"url": url}).get_subjects()


def _delete_test_subjects(url: str, before: set[str]) -> None:
    """The subjects of the session's test namespaces (`namespace` fixture), deleted with their
    topics: the registry keeps its data on disk, and they would pile up there."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": url})
    ours = [s for s in client.get_subjects() if s not in before and TEST_SUBJECT.match(s)]
    try:
        for subject in ours:
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)
    except Exception as exc:  # the client raises its own error types; cleanup is best effort
        _log(f"could not delete the session's Schema Registry subjects: {exc}")
        return
    _log(f"deleted the session's {len(ours)} Schema Registry subjects")


@pytest.fixture
def namespace(kafka_names: KafkaNames) -> str:
    """Fresh topics and consumer group per test, so tests never see each other's records;
    tracked, so that they are deleted at the end of the session."""
    namespace = f"t{uuid.uuid4().hex[:8]}."
    kafka_names.track(namespace)  # its topics
    kafka_names.track(app_id(namespace))  # its consumer groups (and Faust's own topics)
    return namespace


def app_id(namespace: str) -> str:
    """The consumer group (INFERSTREAM_APP_ID) of a test's workers; others derive from it."""
    return f"inferstream-{namespace.rstrip('.')}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The test's INFERSTREAM_STATE_DIR (workers' Faust data): under its `tmp_path`, so under
    the suite's INFERSTREAM_STATE_DIR when that is set, and removed with pytest's old temporary
    directories."""
    return tmp_path / "state"


@pytest.fixture
def env(stack, namespace: str, state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        INFERSTREAM_KAFKA_BOOTSTRAP=stack.bootstrap,
        INFERSTREAM_REDIS_URL=stack.redis_url,
        INFERSTREAM_TOPIC_NAMESPACE=namespace,
        INFERSTREAM_APP_ID=app_id(namespace),
        INFERSTREAM_TOPIC_PARTITIONS="4",
        INFERSTREAM_STATE_DIR=str(state_dir),
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


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A models directory of links to the repository's fraud versions (no routing.json), for
    a test to write its own routing policy or add versions to."""
    from pipeline.config import REPO_ROOT

    root = tmp_path / "models"
    (root / "fraud").mkdir(parents=True)
    for entry in (REPO_ROOT / "models" / "fraud").iterdir():
        if entry.name != "routing.json":
            (root / "fraud" / entry.name).symlink_to(entry)
    return root

