"""`inferstream tail` against the real broker: dead letters, --last, idle notice, suggestions."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Producer

from pipeline.cli import main
from pipeline.core.registry import stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.streams.fraud.generator import TransactionGenerator

pytestmark = pytest.mark.integration


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_tail_of_the_dlq_shows_why_each_record_was_rejected(settings, capsys):
    spec = stream_topics("fraud", settings.topic_namespace)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(
        spec.dlq,
        b"\x00not avro",
        b"card-1",
        headers=[
            ("dlq.stage", b"decode"),
            ("dlq.reason", b"undecodable"),
            ("dlq.detail", b"magic byte 0 then unknown schema id"),
            ("dlq.source.topic", spec.requests.encode()),
            ("dlq.source.partition", b"1"),
            ("dlq.source.offset", b"5"),
        ],
    )
    assert producer.flush(30) == 0

    assert main(["tail", spec.dlq, "--from-beginning", "--max", "1"]) == 0
    [shown] = lines(capsys.readouterr().out)
    assert shown["dlq.reason"] == "undecodable"
    assert shown["dlq.detail"] == "magic byte 0 then unknown schema id"
    assert shown["dlq.source"] == f"{spec.requests}[1]@5"


def test_last_n_prints_the_newest_records_and_exits(settings, capsys):
    spec = stream_topics("fraud", settings.topic_namespace)
    records = TransactionGenerator(seed=12).generate(10).records
    with RequestProducer(settings, spec) as producer:
        producer.send_many(records[:7])
    time.sleep(0.05)  # later timestamps for the last three
    with RequestProducer(settings, spec) as producer:
        newest = producer.send_many(records[7:])

    assert main(["tail", spec.requests, "--last", "3"]) == 0
    shown = lines(capsys.readouterr().out)
    assert sorted(r["request_id"] for r in shown) == sorted(newest)

    assert main(["tail", spec.requests, "--last", "50"]) == 0
    assert len(lines(capsys.readouterr().out)) == 10


def test_waiting_on_a_quiet_topic_says_so_on_stderr(settings, capsys):
    results = stream_topics("fraud", settings.topic_namespace).results
    assert main(["tail", results, "--idle-timeout", "2"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"no new records on {results}" in err


def test_max_not_reached_says_how_many_came(settings, capsys):
    results = stream_topics("fraud", settings.topic_namespace).results
    assert main(["tail", results, "--from-beginning", "--max", "5", "--idle-timeout", "1"]) == 0
    assert "stopped after 0 of 5 record(s)" in capsys.readouterr().err


def test_a_topic_name_without_the_stream_prefix_suggests_the_full_name(settings, capsys):
    assert main(["tail", "results"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"inferstream: error: topic 'results' does not exist; "
        f"did you mean {settings.topic_namespace}docs.results or "
        f"{settings.topic_namespace}fraud.results?"
    ]


def test_an_unknown_topic_is_one_line_exit_1(settings, capsys):
    assert main(["tail", f"{settings.topic_namespace}nonsense"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
