"""`inferstream demo` around the run: the stack check, the exit status, SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal

import pytest

import pipeline.cli.demo_cmd as demo_cmd
import pipeline.demo.run as demo_run
import pipeline.stack as stack
import pipeline.stack.kafka as stack_kafka
import pipeline.stack.process as stack_process
import pipeline.stack.redis as stack_redis
from pipeline.cli import CliError
from pipeline.config import Settings


def _args(**flags: str) -> argparse.Namespace:
    values = {"seconds": "5", "rate": "100", "seed": "1", "drift_feature": "amount"}
    values.update(drift_shift="1")
    values.update(flags)
    return argparse.Namespace(**values)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []

    def ensure_up(cfg: Settings, log: object = None, *, services: list[str]) -> None:
        seen.append(("ensure_up", (cfg.kafka_bootstrap, cfg.redis_url, list(services))))

    monkeypatch.setattr(stack, "ensure_up", ensure_up)
    monkeypatch.setattr(stack_process, "port_open", lambda *a, **k: False)
    monkeypatch.setattr(stack_kafka, "broker_answers", lambda *a, **k: False)
    monkeypatch.setattr(stack_redis, "redis_answers", lambda *a, **k: False)
    return seen


def test_a_loopback_bootstrap_that_does_not_answer_gets_the_stack_started_there(calls) -> None:
    cfg = Settings(kafka_bootstrap="127.0.0.1:19999", redis_url="redis://localhost:16379/0")
    demo_cmd.ensure_stack(cfg, log=lambda line: None)
    assert calls == [
        ("ensure_up", ("127.0.0.1:19999", "redis://localhost:16379/0", ["kafka", "redis"]))
    ]


def test_an_external_kafka_that_does_not_answer_is_one_line_saying_what_to_do(calls) -> None:
    cfg = Settings(kafka_bootstrap="broker.example:9092")
    with pytest.raises(CliError) as info:
        demo_cmd.ensure_stack(cfg, log=lambda line: None)
    message = str(info.value)
    assert "broker.example:9092 does not answer" in message and "\n" not in message
    assert "INFERSTREAM_KAFKA_BOOTSTRAP" in message
    assert calls == []


def test_an_external_redis_that_does_not_answer_is_a_cli_error(calls) -> None:
    cfg = Settings(redis_url="redis://cache.example:6379/0")
    with pytest.raises(CliError, match="INFERSTREAM_REDIS_URL"):
        demo_cmd.ensure_stack(cfg, log=lambda line: None)


def test_external_servers_that_answer_are_used_and_only_local_ones_ensured(
    calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_process, "port_open", lambda *a, **k: True)
    monkeypatch.setattr(stack_kafka, "broker_answers", lambda *a, **k: True)
    cfg = Settings(kafka_bootstrap="broker.example:9092")
    demo_cmd.ensure_stack(cfg, log=lambda line: None)
    assert calls == [("ensure_up", ("broker.example:9092", cfg.redis_url, ["redis"]))]


def test_a_stack_that_will_not_start_is_a_cli_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def ensure_up(*args: object, **kwargs: object) -> None:
        raise stack.StackError("kafka (pid 1) exited before answering")

    monkeypatch.setattr(stack, "ensure_up", ensure_up)
    with pytest.raises(CliError, match="exited before answering"):
        demo_cmd.ensure_stack(Settings(), log=lambda line: None)


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """run() sets these in os.environ for its workers: restore them afterwards."""
    for key in (
        "INFERSTREAM_TOPIC_NAMESPACE",
        "INFERSTREAM_APP_ID",
        "INFERSTREAM_KAFKA_BOOTSTRAP",
        "INFERSTREAM_REDIS_URL",
    ):
        monkeypatch.setenv(key, "")  # so that undo restores (or removes) it
        monkeypatch.delenv(key)
    monkeypatch.setenv("INFERSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    monkeypatch.setattr(demo_cmd, "ensure_stack", lambda cfg, log: None)


def _fake_run(produced: int, answered: int):
    def run_demo(cfg, options, console, stats):
        stats.produced_ids.update(str(i) for i in range(produced))
        stats.produced.add(produced)
        for i in range(answered):
            stats.answer(str(i))
            stats.add_result(1.0, "approve")
        return stats, 1.0

    return run_demo


def test_the_demo_runs_in_its_own_namespace(demo_env, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    def run_demo(cfg, options, console, stats):
        seen.append(cfg)
        return stats, 1.0

    monkeypatch.setattr(demo_run, "run_demo", run_demo)
    assert demo_cmd.run(_args()) == 0
    assert seen[0].topic_namespace == "demo." and seen[0].app_id == "inferstream-demo"
    assert os.environ["INFERSTREAM_TOPIC_NAMESPACE"] == "demo."  # the workers inherit it


def test_everything_scored_exits_0(demo_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_run, "run_demo", _fake_run(10, 10))
    assert demo_cmd.run(_args()) == 0


def test_not_everything_scored_exits_1(demo_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_run, "run_demo", _fake_run(10, 7))
    with pytest.raises(CliError) as info:
        demo_cmd.run(_args())
    assert info.value.exit_code == 1 and "3 of 10 requests unanswered" in str(info.value)


def test_sigterm_takes_the_interrupt_path_and_the_handler_is_restored(
    demo_env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cleaned: list[str] = []

    def run_demo(cfg, options, console, stats):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()  # the handler raises out of here
        finally:
            cleaned.append("workers stopped")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(demo_run, "run_demo", run_demo)
    assert demo_cmd.run(_args()) == 143
    assert cleaned == ["workers stopped"]
    assert signal.getsignal(signal.SIGTERM) == before
    assert "terminated (SIGTERM)" in capsys.readouterr().out


def test_ctrl_c_exits_130(demo_env, monkeypatch: pytest.MonkeyPatch) -> None:
    def run_demo(cfg, options, console, stats):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_run, "run_demo", run_demo)
    assert demo_cmd.run(_args()) == 130


class _FakeStore:
    deleted: list[str] = []

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix

    def delete_matching(self, pattern: str) -> int:
        self.deleted.append(self.prefix + pattern)
        return 1


@pytest.mark.parametrize("namespace", ["", "staging.", "t1234."])
def test_drift_checkpoints_outside_the_demo_namespace_are_never_deleted(
    namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _FakeStore.deleted = []
    monkeypatch.setattr(demo_run, "RedisStateStore", _FakeStore)
    assert demo_run.reset_drift_checkpoints(Settings(topic_namespace=namespace)) == 0
    assert _FakeStore.deleted == []


def test_drift_checkpoints_of_the_demo_namespace_are_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _FakeStore.deleted = []
    monkeypatch.setattr(demo_run, "RedisStateStore", _FakeStore)
    demo_run.reset_drift_checkpoints(Settings(topic_namespace="demo."))
    assert _FakeStore.deleted == ["inferstream:drift:*:demo.fraud:*"]


@pytest.mark.parametrize("namespace", ["", "staging."])
def test_backlog_outside_the_demo_namespace_is_never_skipped(
    namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_kafka(*args: object, **kwargs: object) -> None:
        raise AssertionError("a consumer group outside the demo namespace was touched")

    monkeypatch.setattr(demo_run, "Consumer", no_kafka)
    assert demo_run.skip_backlog(Settings(topic_namespace=namespace)) == 0
