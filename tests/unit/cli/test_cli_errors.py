"""`inferstream` in-process: a bad setting or flag is one line on stderr and exit code 2,
before anything starts; other user errors are one line with their own exit code."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

import pipeline.cli.worker_cmd as worker_cmd
from pipeline.cli import CliError, main
from pipeline.errors import InferstreamError


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Records what would have started a worker (nothing really starts)."""
    import agents.worker

    calls: list[tuple] = []

    def fake_build_worker(cfg, streams, **kwargs):
        calls.append(("build", streams, kwargs["role"]))
        return SimpleNamespace(app=object())

    monkeypatch.setattr(agents.worker, "build_worker", fake_build_worker)
    monkeypatch.setattr(
        worker_cmd, "run_faust_app", lambda app, level: calls.append(("run", level))
    )
    for name in list(os.environ):
        if name.startswith("INFERSTREAM_") and name not in (
            "INFERSTREAM_KAFKA_BOOTSTRAP",
            "INFERSTREAM_REDIS_URL",
        ):
            monkeypatch.delenv(name)
    return calls


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_a_good_worker_starts(started: list[tuple], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--log-level", "debug"]) == 0
    assert started == [("build", ["fraud"], "score"), ("run", "DEBUG")]


@pytest.mark.parametrize(
    ("variable", "value", "valid"),
    [
        ("INFERSTREAM_BATCH_MAX", "0", "an integer >= 1"),
        ("INFERSTREAM_TOPIC_PARTITIONS", "abc", "an integer >= 1"),
        ("INFERSTREAM_LATENCY_SLO_MS", "0", "a number > 0"),
        ("INFERSTREAM_COMMIT_INTERVAL_S", "-1", "a number >= 0"),
        ("INFERSTREAM_ENGINE_STALL_S", "0", "a number > 0"),
        ("INFERSTREAM_PUBLISH_TIMEOUT_S", "0", "a number > 0"),
        ("INFERSTREAM_MODEL_TIMEOUT_S", "0", "a number > 0"),
        ("INFERSTREAM_MODEL_RETRIES", "-1", "an integer >= 0"),
        ("INFERSTREAM_TOPIC_REPLICATION", "0", "an integer >= 1"),
        ("INFERSTREAM_INFERENCE_THREADS", "0", "an integer >= 1"),
        ("INFERSTREAM_CONSUMER_PREFETCH_KBYTES", "0", "an integer in [1, 2097151]"),
        ("INFERSTREAM_CONSUMER_SESSION_TIMEOUT_MS", "1000", "an integer in [6000, 300000]"),
        ("INFERSTREAM_PRODUCER_LINGER_MS", "-5", "a number in [0, 900000]"),
        ("INFERSTREAM_OUTPUT_COMPRESSION", "brotli", "one of none, gzip, snappy, lz4, zstd"),
        ("INFERSTREAM_LOG_LEVEL", "loud", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_bad_setting_exits_2_in_one_line_before_the_worker_starts(
    variable: str,
    value: str,
    valid: str,
    started: list[tuple],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["worker"]) == 2
    assert one_line(capsys).startswith(
        f"inferstream: error: invalid {variable}={value!r}: expected {valid}"
    )
    assert started == []


def test_unknown_variable_exits_2_with_the_closest_name(
    started: list[tuple], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INFERSTREAM_BATCH_SIZE", "10")
    assert main(["worker"]) == 2
    assert one_line(capsys) == (
        "inferstream: error: unknown environment variable INFERSTREAM_BATCH_SIZE; "
        "did you mean INFERSTREAM_BATCH_MAX?"
    )
    assert started == []


@pytest.mark.parametrize(
    "argv", [["drift", "status"], ["stack", "status"], ["topics", "ensure"], ["drift", "worker"]]
)
def test_every_command_checks_the_settings_first(
    argv: list[str],
    started: list[tuple],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("INFERSTREAM_TOPIC_PARTITIONS", "0")
    assert main(argv) == 2
    assert one_line(capsys).startswith("inferstream: error: invalid INFERSTREAM_TOPIC_PARTITIONS")
    assert started == []


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["worker", "--log-level", "bogus"], "argument --log-level: invalid choice: 'BOGUS'"),
        (["worker", "--processes", "0"], "argument --processes: expected an integer >= 1"),
        (["worker", "--processes", "two"], "argument --processes: expected an integer >= 1"),
        (["worker", "--streams", "fraud,nope"], "argument --streams: unknown stream 'nope'"),
        (["worker", "--streams", ","], "argument --streams: no stream named in"),
        (["drift", "worker", "--log-level", "x"], "argument --log-level: invalid choice"),
        (["drift", "worker", "--processes", "-1"], "argument --processes: expected an integer"),
        (["drift", "worker", "--streams", "nope"], "argument --streams: unknown stream 'nope'"),
        (["drift", "status", "--bogus"], "unrecognized arguments: --bogus"),
        (["stack", "up", "--timeout", "0"], "argument --timeout: expected a number > 0"),
        (["stack", "up", "--timeout", "soon"], "argument --timeout: expected a number > 0"),
        (["stack", "restart"], "argument ACTION: invalid choice: 'restart'"),
        (["nope"], "argument COMMAND: invalid choice: 'nope'"),
    ],
)
def test_bad_flag_exits_2_in_one_line(
    argv: list[str], fragment: str, started: list[tuple], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    line = one_line(capsys)
    assert line.startswith("inferstream")
    assert fragment in line, line
    assert started == []


def test_log_level_choices_are_named(
    started: list[tuple], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--log-level", "bogus"]) == 2
    assert "DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'" in one_line(capsys)


def test_drift_worker_flags_reach_the_worker(started: list[tuple]) -> None:
    assert main(["drift", "worker", "--streams", " fraud ", "--log-level", "Info"]) == 0
    assert started == [("build", ["fraud"], "drift"), ("run", "INFO")]


def test_user_errors_are_one_line_with_their_exit_code(
    started: list[tuple], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args, role, command):
        raise CliError("the model is missing", exit_code=3)

    monkeypatch.setattr(worker_cmd, "run_worker", fail)
    assert main(["worker"]) == 3
    assert one_line(capsys) == "inferstream: error: the model is missing"
    assert issubclass(CliError, InferstreamError)
    assert CliError("x").exit_code == 1


def test_a_bug_keeps_its_traceback(started: list[tuple], monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(args, role, command):
        raise RuntimeError("a bug")

    monkeypatch.setattr(worker_cmd, "run_worker", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["worker"])


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("inferstream ")
    assert main(["worker", "--help"]) == 0
