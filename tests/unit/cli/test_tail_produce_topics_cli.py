"""produce / tail / topics: flag ranges, dead-letter rendering, topic suggestions, no broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.cli import main
from pipeline.cli.tail_cmd import render, suggest_topic
from pipeline.kafka.reader import ReadRecord

UNREACHABLE = "127.0.0.1:1"  # nothing listens there


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag check that ever waited for Kafka would fail with exit 1, not the 2 asserted."""
    monkeypatch.setenv("INFERSTREAM_KAFKA_BOOTSTRAP", UNREACHABLE)
    monkeypatch.delenv("INFERSTREAM_TOPIC_NAMESPACE", raising=False)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("inferstream: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--count", "10", "--rate", "-5"], "--rate must be > 0"),
        (["--count", "10", "--rate", "0"], "--rate must be > 0"),
        (["--count", "0"], "--count must be >= 1"),
        (["--count", "-3"], "--count must be >= 1"),
        (["--count", "10", "--fraud-share", "1.5"], "--fraud-share must be in [0, 0.25]"),
        (["--count", "10", "--fraud-share", "-0.1"], "--fraud-share must be in [0, 0.25]"),
        (["--count", "10", "--fraud-share", "0.5"], "must be in [0, 0.25]"),  # the generator's
        (["--count", "10", "--drift-after", "-1"], "--drift-after must be >= 0"),
        (
            ["--count", "10", "--drift-after", "5", "--drift-feature", "colour"],
            "--drift-feature must be one of amount",
        ),
        (["--count", "10", "--drift-shift", "2"], "--drift-shift needs --drift-after"),
        (
            ["--count", "10", "--drift-after", "5", "--drift-scale", "0"],
            "--drift-scale must be > 0",
        ),
    ],
)
def test_produce_rejects_out_of_range_flags_in_one_line(capsys, flags, expected):
    assert main(["produce", "fraud", *flags]) == 2
    assert expected in one_line_error(capsys)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max", "0"], "--max must be >= 1"),
        (["--max", "-2"], "--max must be >= 1"),
        (["--idle-timeout", "0"], "--idle-timeout must be > 0"),
        (["--idle-timeout", "-1"], "--idle-timeout must be > 0"),
        (["--last", "0"], "--last must be >= 1"),
    ],
)
def test_tail_rejects_out_of_range_flags_in_one_line(capsys, flags, expected):
    assert main(["tail", "fraud.results", *flags]) == 2
    assert expected in one_line_error(capsys)


@pytest.mark.parametrize("flag", ["--partitions", "--replication"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_topics_ensure_rejects_counts_below_one(capsys, flag, value):
    assert main(["topics", "ensure", flag, value]) == 2
    assert f"{flag} must be >= 1" in one_line_error(capsys)


def test_unqualified_topic_names_suggest_the_stream_topic():
    assert suggest_topic("results") == "docs.results or fraud.results"
    assert suggest_topic("dlq") == "docs.dlq or fraud.dlq"
    assert suggest_topic("results", "staging.") == "staging.docs.results or staging.fraud.results"
    assert suggest_topic("fraud.results", "staging.") == "staging.fraud.results"
    assert suggest_topic("alerts") == "drift.alerts"
    assert suggest_topic("fraud.results") is None  # that is the name already
    assert suggest_topic("nonsense") is None


def record(value, headers):
    return ReadRecord(
        topic="fraud.dlq",
        partition=0,
        offset=7,
        timestamp_ms=1,
        key=b"card-1",
        headers=headers,
        raw=b"\x00raw",
        value=value,
        error=None if value is not None else ValueError("not Avro"),
    )


DLQ_HEADERS = {
    "request_id": b"r-1",
    "dlq.stage": b"validate",
    "dlq.reason": b"invalid_request",
    "dlq.detail": b"amount -3 out of range (0, 1000000]",
    "dlq.source.topic": b"fraud.requests",
    "dlq.source.partition": b"2",
    "dlq.source.offset": b"41",
}


def test_dead_letters_show_their_reason_without_meta():
    decoded = render(record({"amount": -3.0}, DLQ_HEADERS), meta=False)
    assert decoded["dlq.reason"] == "invalid_request"
    assert decoded["dlq.detail"] == "amount -3 out of range (0, 1000000]"
    assert decoded["dlq.stage"] == "validate"
    assert decoded["dlq.source"] == "fraud.requests[2]@41"
    assert decoded["value"] == {"amount": -3.0}

    undecodable = render(record(None, DLQ_HEADERS), meta=False)
    assert undecodable["dlq.reason"] == "invalid_request"
    assert undecodable["decode_error"] == "not Avro"
    assert "value_base64" in undecodable


def test_ordinary_records_stay_plain_values_and_meta_keeps_all_headers():
    assert render(record({"score": 0.5}, {"request_id": b"r-1"}), meta=False) == {"score": 0.5}
    meta = render(record({"amount": -3.0}, DLQ_HEADERS), meta=True)
    assert meta["headers"]["dlq.reason"] == "invalid_request"
    assert meta["offset"] == 7 and meta["value"] == {"amount": -3.0}


@pytest.mark.parametrize(
    "command",
    [["topics", "ensure"], ["produce", "fraud", "--count", "10"], ["tail", "fraud.results"]],
)
def test_unreachable_kafka_is_one_line_and_exit_1(command):
    env = {**os.environ, "INFERSTREAM_KAFKA_BOOTSTRAP": UNREACHABLE}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,  # returns at all (librdkafka alone would retry for 30-60 s)
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(
        f"inferstream: error: cannot reach Kafka at {UNREACHABLE}"
    ), done.stderr
