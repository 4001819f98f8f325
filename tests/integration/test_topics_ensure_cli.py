"""`topics ensure` and `produce` on the real broker: partitions, replication, no auto-create."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.core.registry import stream_topics
from pipeline.kafka.admin import cluster_metadata, ensure_topics, topic_names

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(env, monkeypatch):
    """The test's namespace for in-process `main()` calls; no topics created yet."""
    for key, value in env.items():
        if key.startswith("INFERSTREAM_"):
            monkeypatch.setenv(key, value)
    return env


def partitions(bootstrap, names):
    topics = cluster_metadata(bootstrap).topics
    return {name: len(topics[name].partitions) if name in topics else None for name in names}


def test_produce_to_a_missing_topic_fails_and_creates_nothing(cli_env, namespace, capsys):
    requests = stream_topics("fraud", namespace).requests
    assert main(["produce", "fraud", "--count", "10"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"inferstream: error: topic {requests} does not exist; run `inferstream topics ensure`"
    ]
    assert partitions(cli_env["INFERSTREAM_KAFKA_BOOTSTRAP"], [requests]) == {requests: None}


def test_replication_the_cluster_cannot_hold_is_told_apart_from_unreachable(
    cli_env, namespace, capsys
):
    assert main(["topics", "ensure", "--replication", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "replication factor 3" in err[0] and "INVALID_REPLICATION_FACTOR" in err[0]
    assert "cannot reach" not in err[0]
    bootstrap = cli_env["INFERSTREAM_KAFKA_BOOTSTRAP"]
    names = topic_names(["fraud"], namespace)
    assert set(partitions(bootstrap, names).values()) == {None}, "nothing half-created"


def test_fewer_partitions_than_configured_warns_and_add_partitions_adds_them(
    cli_env, namespace, capsys
):
    bootstrap = cli_env["INFERSTREAM_KAFKA_BOOTSTRAP"]
    ensure_topics(bootstrap, ["fraud"], 2, 1, namespace)
    requests = stream_topics("fraud", namespace).requests
    alerts = f"{namespace}drift.alerts"

    assert main(["topics", "ensure", "--streams", "fraud", "--partitions", "4"]) == 0
    out, err = capsys.readouterr()
    assert f"exists  {requests} (2 partitions)" in out
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert any(requests in line and "fewer than the configured 4" in line for line in warnings)
    assert all("--add-partitions" in line for line in warnings)
    assert not any(alerts in line for line in warnings)  # one partition is its configuration
    assert partitions(bootstrap, [requests])[requests] == 2, "nothing changed without the flag"

    assert main(["topics", "ensure", "--partitions", "4", "--add-partitions"]) == 0
    out, err = capsys.readouterr()
    assert f"added   {requests} (4 partitions)" in out
    assert "warning" not in err
    names = topic_names(["fraud"], namespace)
    got = partitions(bootstrap, names)
    assert got == {name: 1 if name == alerts else 4 for name in names}

    assert main(["topics", "ensure", "--partitions", "4"]) == 0
    out, err = capsys.readouterr()
    assert f"exists  {requests} (4 partitions)" in out and "warning" not in err
