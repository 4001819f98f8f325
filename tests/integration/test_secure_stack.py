"""The secured stack (`inferstream stack up --secure`) end to end: Kafka SASL_SSL + SCRAM,
Redis TLS + password, a worker subprocess scoring through both; a wrong password and an
untrusted certificate each fail in one line; no secret in the worker's logs.

The secured Kafka and Redis run in a state directory of this module's own, on free ports, so
they never meet the plaintext stack the other tests share. If they cannot start, the tests
fail with the stack's reason (no skip).
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.codec import registry_from_settings
from pipeline.config import REPO_ROOT, Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.kafka.reader import read_topic
from pipeline.redis.client import DegradingRedis
from pipeline.stack import secure
from pipeline.stack.secure import SecureStack, make_ca
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.helpers import WorkerProcess, port_free

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

N = 300



def _free_ports() -> tuple[int, int]:
    """A Kafka port whose next port (the controller's) is free too, and a Redis port."""
    rng = random.Random()
    while True:
        kafka, redis_port = rng.randrange(20000, 30000, 2), rng.randrange(30001, 40000, 2)
        if port_free(kafka) and port_free(kafka + 1) and port_free(redis_port):
            return kafka, redis_port


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecureStack, Settings]]:
    base = dataclasses.replace(
        Settings.from_env(os.environ), state_dir=tmp_path_factory.mktemp("secure-state")
    )
    kafka_port, redis_port = _free_ports()
    lines: list[str] = []
    try:
        stack = secure.up(base, lines.append, kafka_port=kafka_port, redis_port=redis_port)
    except Exception as exc:  # the reason, not a skip: the secured stack must start here
        secure.down(base, lines.append)
        pytest.fail(f"the secured stack did not start: {exc}\n" + "\n".join(lines))
    try:
        yield stack, stack.client_settings(base)
    finally:
        secure.down(base, lines.append)


def _env(stack: SecureStack, base: Settings, namespace: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERSTREAM_")}
    env.update(
        stack.client_env(),
        INFERSTREAM_CACHE_DIR=str(base.cache_dir),
        INFERSTREAM_STATE_DIR=str(base.state_dir / namespace.rstrip(".")),
        INFERSTREAM_TOPIC_NAMESPACE=namespace,
        INFERSTREAM_APP_ID=f"inferstream-{namespace.rstrip('.')}",
        INFERSTREAM_TOPIC_PARTITIONS="2",
        INFERSTREAM_METRICS="off",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _secrets(stack: SecureStack) -> list[str]:
    files = [stack.kafka_password_file, stack.redis_password_file]
    files += [stack.dir / "kafka-broker.password", stack.dir / "store.password"]
    return [f.read_text().strip() for f in files]


def test_a_worker_scores_through_sasl_ssl_kafka_and_tls_redis_without_leaking_secrets(
    secured: tuple[SecureStack, Settings],
) -> None:
    stack, settings = secured
    namespace = f"sec{uuid.uuid4().hex[:6]}."
    settings = dataclasses.replace(settings, topic_namespace=namespace)
    topics = stream_topics("fraud", namespace)
    ensure_topics(settings, ["fraud"], 2, 1, namespace)
    # the worker logs everything it logs at DEBUG, so that the grep below sees all of it
    env = _env(stack, settings, namespace, INFERSTREAM_LOG_LEVEL="DEBUG")
    worker = WorkerProcess(env)
    worker.lines = deque()  # keep every line, not the last 2,000
    worker.start(timeout=120)
    try:
        with RequestProducer(settings, topics) as producer:
            ids = producer.send_many(TransactionGenerator(seed=16).generate(N).records)
        registry = registry_from_settings(settings)
        results = []
        for record in read_topic(settings, topics.results, registry, idle_timeout=60):
            results.append(record.value)
            if len(results) >= N:
                break
    finally:
        worker.stop()
    assert len(results) == N and {r["request_id"] for r in results} == set(ids)
    # not degraded: the worker's cache and request-id rule reached Redis over TLS with the password
    assert not any(r["degraded"] for r in results)
    log = "\n".join(worker.lines)
    assert any('"ready"' in line for line in worker.lines), log[-2000:]
    for secret in _secrets(stack):
        assert secret not in log
    assert all(secret not in repr(settings) for secret in _secrets(stack))


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_wrong_password_fails_in_one_clear_line(
    secured: tuple[SecureStack, Settings], tmp_path: Path
) -> None:
    stack, settings = secured
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    env = _env(stack, settings, "secwrong.", INFERSTREAM_KAFKA_SASL_PASSWORD_FILE=str(wrong))
    done = _cli(env, "topics", "ensure")
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1, done.stderr
    assert "SASL authentication failed" in lines[0], lines[0]
    assert "INFERSTREAM_KAFKA_SASL_PASSWORD_FILE" in lines[0]
    assert "not-the-password" not in done.stderr + done.stdout


def test_an_untrusted_broker_certificate_fails_in_one_clear_line(
    secured: tuple[SecureStack, Settings], tmp_path: Path
) -> None:
    stack, settings = secured
    other_ca, _ = make_ca(tmp_path / "other", "some other CA")
    env = _env(stack, settings, "secca.", INFERSTREAM_KAFKA_SSL_CA_LOCATION=str(other_ca))
    done = _cli(env, "topics", "ensure")
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1, done.stderr
    assert "certificate is not trusted" in lines[0], lines[0]
    assert "INFERSTREAM_KAFKA_SSL_CA_LOCATION" in lines[0]


def test_redis_refuses_a_wrong_password_and_an_untrusted_certificate(
    secured: tuple[SecureStack, Settings], tmp_path: Path
) -> None:
    _, settings = secured
    good = DegradingRedis(settings)
    assert good.call(lambda r: r.ping()) is True
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    bad_password = DegradingRedis(dataclasses.replace(settings, redis_password_file=str(wrong)))
    assert bad_password.call(lambda r: r.ping()) is None and bad_password.degraded
    other_ca, _ = make_ca(tmp_path / "other", "some other CA")
    untrusted = DegradingRedis(dataclasses.replace(settings, redis_tls_ca=str(other_ca)))
    assert untrusted.call(lambda r: r.ping()) is None and untrusted.degraded
