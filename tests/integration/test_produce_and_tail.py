"""Producer API and the produce / tail / topics CLI against the real broker."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections import defaultdict

import pytest

from pipeline.codec import SchemaCatalog
from pipeline.codec.registry import local_schema_id
from pipeline.core.registry import stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.streams.fraud.generator import TransactionGenerator
from tests.integration.helpers import read_all

pytestmark = pytest.mark.integration


def cli(env, *args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def test_ten_thousand_records_round_trip_without_loss_in_key_order(settings):
    spec = stream_topics("fraud", settings.topic_namespace)
    records = TransactionGenerator(seed=3).generate(10_000).records
    with RequestProducer(settings, spec) as producer:
        ids = producer.send_many(records)
    assert len(set(ids)) == 10_000

    read = read_all(settings, spec.requests, expected=10_000)
    assert sorted(r.value["request_id"] for r in read) == sorted(ids)
    sent_order = defaultdict(list)
    for record in records:
        sent_order[record["card_id"]].append(record["request_id"])
    read_order = defaultdict(list)
    partitions_of_key = defaultdict(set)
    for r in sorted(read, key=lambda r: (r.partition, r.offset)):
        read_order[r.key.decode()].append(r.value["request_id"])
        partitions_of_key[r.key.decode()].add(r.partition)
    assert read_order == sent_order, "order per key is kept"
    assert all(len(p) == 1 for p in partitions_of_key.values()), "one partition per key"
    headers = read[0].headers
    assert headers["request_id"].decode() == read[0].value["request_id"]
    assert headers["traceparent"].startswith(b"00-")


def test_every_message_is_confluent_framed_with_a_schema_id_from_schemas_dir(settings):
    spec = stream_topics("fraud", settings.topic_namespace)
    with RequestProducer(settings, spec) as producer:
        producer.send_many(TransactionGenerator(seed=4).generate(50).records)
    known = {local_schema_id(v) for v in SchemaCatalog(settings.schemas_dir).all_versions()}
    for record in read_all(settings, spec.requests, expected=50):
        magic, schema_id = struct.unpack(">bI", record.raw[:5])
        assert magic == 0 and schema_id in known
        assert record.error is None


def test_cli_produce_then_tail_prints_every_record_once(settings, env):
    topic = stream_topics("fraud", settings.topic_namespace).requests
    produced = cli(env, "produce", "fraud", "--count", "10000", "--seed", "9")
    assert produced.returncode == 0, produced.stderr
    tailed = cli(env, "tail", topic, "--max", "10000", "--from-beginning")
    assert tailed.returncode == 0, tailed.stderr
    lines = tailed.stdout.splitlines()
    assert len(lines) == 10_000
    ids = {json.loads(line)["request_id"] for line in lines}
    assert len(ids) == 10_000


def test_cli_file_with_a_bad_line_names_it_and_sends_nothing(settings, env, tmp_path):
    good = TransactionGenerator(seed=1).generate(3).records
    lines = [json.dumps(r) for r in good]
    lines.insert(1, json.dumps({**good[0], "amount": "twelve"}))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    topic = stream_topics("fraud", settings.topic_namespace).requests

    aborted = cli(env, "produce", "fraud", "--file", str(path))
    assert aborted.returncode != 0
    assert f"{path}:2:" in aborted.stderr and "amount" in aborted.stderr
    assert read_all(settings, topic, idle_timeout=3) == []

    skipped = cli(env, "produce", "fraud", "--file", str(path), "--on-error", "skip")
    assert skipped.returncode == 0, skipped.stderr
    sent = read_all(settings, topic, expected=3)
    assert sorted(r.value["request_id"] for r in sent) == sorted(r["request_id"] for r in good)


def test_topics_ensure_is_idempotent(settings, env):
    first = cli(env, "topics", "ensure")
    assert first.returncode == 0, first.stderr
    assert "exists  " in first.stdout  # the settings fixture created them already
    assert f"{settings.topic_namespace}drift.alerts" in first.stdout


def test_cli_file_applies_the_workers_checks_and_survives_non_utf8(settings, env, tmp_path):
    good = TransactionGenerator(seed=5).generate(2).records
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        json.dumps(good[0]).encode()
        + b"\n"
        + json.dumps({**good[1], "amount": -3.0}).encode()
        + b"\n"
        + b'{"card_id": "\xff"}\n'
    )
    topic = stream_topics("fraud", settings.topic_namespace).requests

    aborted = cli(env, "produce", "fraud", "--file", str(path))
    assert aborted.returncode == 1, aborted.stderr
    assert f"{path}:2: amount -3 out of range" in aborted.stderr
    assert f"{path}:3: not UTF-8" in aborted.stderr
    assert "Traceback" not in aborted.stderr
    assert read_all(settings, topic, idle_timeout=3) == []
