"""Replay through the real broker: a served range replays identically; another version's
differences equal an offline computation; ranges are exact; bad ranges are one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipeline.codec import AvroSerializer, registry_from_settings
from pipeline.config import REPO_ROOT, Settings
from pipeline.core.registry import stream_topics
from pipeline.kafka.partitioner import partition_for
from pipeline.kafka.producer import RequestProducer
from pipeline.models.manifest import ModelManifest
from pipeline.replay.explain import explain
from pipeline.replay.ranges import OffsetRange, TimeRange
from pipeline.replay.run import replay
from pipeline.streams.fraud.features import FEATURE_NAMES
from pipeline.streams.fraud.generator import TransactionGenerator
from pipeline.streams.fraud.head import decide
from tests.integration.helpers import PacedProducer, read_all, values, wait_for

pytestmark = pytest.mark.integration

N = 600


@pytest.fixture
def served(settings: Settings, worker) -> tuple[Settings, list[dict], int, int]:
    """N fraud requests served by the worker; the time range that holds them."""
    records = TransactionGenerator(seed=21).generate(N).records
    before = int(time.time() * 1000)
    with RequestProducer(settings, stream_topics("fraud", settings.topic_namespace)) as producer:
        producer.send_many(records)
    after = int(time.time() * 1000) + 1
    topics = stream_topics("fraud", settings.topic_namespace)
    assert len(read_all(settings, topics.results, expected=N)) == N
    assert len(read_all(settings, topics.provenance, expected=N)) == N
    return settings, records, before, after


def test_replaying_what_was_served_with_its_version_agrees_exactly(served) -> None:
    settings, _, before, after = served
    report = replay(settings, "fraud", TimeRange(before, after))
    counts = report["counts"]
    assert counts["in_range"] == counts["replayed"] == counts["matched"] == N
    assert counts["data_hash_equal"] == N and report["fidelity"]["mismatch_count"] == 0
    assert counts["unmatched_replay_only"] == counts["unmatched_served_only"] == 0
    assert report["agreement"]["score"]["differing"] == 0
    assert report["agreement"]["decision"]["identical"] == N
    assert report["model_versions"] == {"served": {"1.0.0": N}, "replayed": {"1.0.0": N}}
    assert report["agree"] is True
    assert sum(row["records"] for row in report["coverage"]) == N


def test_another_version_differs_as_an_offline_computation_says(served, tmp_path: Path) -> None:
    settings, _, before, after = served
    models = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models" / "fraud", models / "fraud")
    manifest_path = models / "fraud" / "1.1.0" / "manifest.json"
    shutil.copytree(models / "fraud" / "1.0.0", manifest_path.parent)
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = "1.1.0"
    manifest["thresholds"] = {"review": 0.05, "decline": 0.3}  # same model, stricter cut-offs
    manifest_path.write_text(json.dumps(manifest))
    settings = replace(settings, models_dir=models)

    report = replay(settings, "fraud", TimeRange(before, after), model_version="1.1.0")

    topics = stream_topics("fraud", settings.topic_namespace)
    results = values(read_all(settings, topics.results, expected=N))
    served_decisions = [r["decision"] for r in results]
    stricter = ModelManifest.load(manifest_path.parent).thresholds
    offline = decide([r["score"] for r in results], stricter["review"], stricter["decline"])
    expected_flips = Counter(
        f"{s} -> {o}" for s, o in zip(served_decisions, offline, strict=True) if s != o
    )
    assert expected_flips, "the stricter thresholds must flip some decisions for this test"
    assert report["agreement"]["decision"]["flips"] == dict(expected_flips)
    assert report["agreement"]["score"]["differing"] == 0  # same model file: same scores
    assert report["model_versions"]["replayed"] == {"1.1.0": N}
    assert report["agree"] is False

    # offline A/B: the served version against 1.1.0, and the A/A floor, in one replay
    both = replay(settings, "fraud", TimeRange(before, after), against="1.1.0", noise=True)
    assert both["agree"] is True  # the first replay (served version) agrees with what was served
    assert both["against"]["agreement"]["decision"]["flips"] == dict(expected_flips)
    assert both["noise"]["agreement"]["decision"]["differing"] == 0
    assert both["noise"]["agreement"]["score"]["differing"] == 0
    assert set(both["model_seconds"]) == {"1.0.0", "1.1.0"}


def test_a_time_range_gives_exactly_the_records_stamped_inside_it(served) -> None:
    settings, _, _, _ = served
    topics = stream_topics("fraud", settings.topic_namespace)
    requests = read_all(settings, topics.requests, expected=N)
    stamps = sorted(r.timestamp_ms for r in requests)
    start, end = stamps[N // 4], stamps[3 * N // 4]
    report = replay(settings, "fraud", TimeRange(start, end))
    inside = Counter(r.partition for r in requests if start <= r.timestamp_ms < end)
    assert {row["partition"]: row["records"] for row in report["coverage"]} == {
        p: inside.get(p, 0) for p in range(settings.topic_partitions)
    }
    assert report["counts"]["in_range"] == sum(inside.values())


def test_offsets_replay_exactly_those_records(served) -> None:
    settings, _, _, _ = served
    report = replay(settings, "fraud", offsets=[OffsetRange(0, 3, 13), OffsetRange(2, 0, 5)])
    assert [(r["partition"], r["start"], r["end"]) for r in report["coverage"]] == [
        (0, 3, 13), (2, 0, 5)]  # fmt: skip
    assert report["counts"]["in_range"] == report["counts"]["matched"] == 15


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--from", "-10m", "--model-version", "9.9.9"], "has no version '9.9.9'"),
        (["--offsets", "17:0-10"], "has no partition 17"),
        (["--offsets", "0:900000-900010"], "is past the end"),
        (["--from", "2001-01-01T00:00:00Z", "--to", "2001-01-02T00:00:00Z"], "retained:"),
        (["--from", "2999-01-01T00:00:00Z"], "is in the future"),
        (["--from", "-1h", "--to", "-2h"], "empty time range"),
        (["--from", "yesterday"], "is not a time"),
    ],
)
def test_a_bad_range_is_one_line_naming_what_is_there(
    served, env: dict[str, str], flags: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "fraud", *flags], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_the_command_prints_the_report_and_writes_json(served, env, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "fraud", "--from", "-10m",
         "--json", str(out), "--quiet"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "replay agrees with what was served" in done.stdout
    report = json.loads(out.read_text())
    assert report["counts"]["matched"] == N and report["agree"] is True


def test_explain_finds_a_scored_and_a_dead_lettered_request(served, env) -> None:
    settings, records, _, _ = served
    topics = stream_topics("fraud", settings.topic_namespace)
    by_id = {r["request_id"]: r for r in values(read_all(settings, topics.results, expected=N))}
    wanted = records[17]["request_id"]
    found = explain(settings, "fraud", wanted)
    assert found["found_in"] == topics.provenance
    assert found["served"] == {k: by_id[wanted][k] for k in ("score", "decision")}
    assert found["reproduced"] is True and found["data_hash_equal"] is True
    assert found["request"]["card_id"] == records[17]["card_id"]
    assert set(found["model_inputs"]) == set(FEATURE_NAMES)
    # provenance is found on murmur2(request id)'s partition: the check that makes that work
    provenance = read_all(settings, topics.provenance, expected=N)
    assert all(partition_for(p.key, settings.topic_partitions) == p.partition for p in provenance)

    bad = dict(records[0], request_id="explain-bad", amount=-5.0)
    with RequestProducer(settings, topics) as producer:
        producer.send(bad)
    assert read_all(settings, topics.dlq, expected=1)
    dead = subprocess.run(
        [sys.executable, "-m", "pipeline", "explain", "explain-bad", "--json"], env=env,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dead.returncode == 0, dead.stderr
    explained = json.loads(dead.stdout)
    assert explained["dead_letter"]["reason"] == "invalid-feature"
    assert "amount" in explained["dead_letter"]["detail"]

    nowhere = subprocess.run(
        [sys.executable, "-m", "pipeline", "explain", "no-such-id"], env=env,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert nowhere.returncode == 2
    assert "is in neither" in nowhere.stderr and len(nowhere.stderr.strip().splitlines()) == 1


def test_the_html_report_shows_its_plots_in_a_real_browser(served, env, tmp_path: Path) -> None:
    from tests.integration.browser import dump_dom, screenshot

    page = tmp_path / "replay.html"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "fraud", "--from", "-10m", "--noise",
         "--html", str(page), "--quiet"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dom = dump_dom(page)
    assert 'id="verdict"' in dom and "replay agrees with what was served" in dom
    assert 'id="delta-vs-served-score"' in dom and "<rect" in dom  # |delta| histogram
    assert 'id="confusion-vs-served-decision"' in dom  # decision confusion matrix
    assert 'id="batch-latency"' in dom and "<polyline" in dom  # latency per batch
    assert f"{N:,}" in dom  # the counts table
    # the plots are drawn: the screenshot holds far more than a blank page's
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")
    shown = screenshot(page, tmp_path / "replay.png").stat().st_size
    empty = screenshot(blank, tmp_path / "blank.png").stat().st_size
    assert shown > 4 * empty, (shown, empty)


def test_a_live_producer_does_not_extend_a_running_replay(served) -> None:
    settings, _, before, _ = served
    topics = stream_topics("fraud", settings.topic_namespace)
    live = PacedProducer(settings, TransactionGenerator(seed=99).generate(3000).records, 500)
    live.start()
    try:
        assert wait_for(lambda: live.sent > 200, timeout=30)  # requests are arriving
        report = replay(settings, "fraud", TimeRange(before, int(time.time() * 1000) + 60_000))
        snapshot = sum(row["end_offset"] for row in report["coverage"])
        assert wait_for(lambda: N + live.sent >= snapshot + 100, timeout=30)  # it kept going
    finally:
        live.close()
    now = len(read_all(settings, topics.requests, idle_timeout=3))
    assert report["counts"]["in_range"] == sum(row["records"] for row in report["coverage"])
    assert report["counts"]["in_range"] <= snapshot < now  # the topic grew; the range did not


def test_a_tampered_provenance_record_is_named_by_the_fidelity_check(served) -> None:
    """A provenance record whose input hash and preprocessing differ from what the request gives
    now (a changed request or feature code) is listed, with both preprocessing versions."""
    settings, records, before, after = served
    topics = stream_topics("fraud", settings.topic_namespace)
    provenance = values(read_all(settings, topics.provenance, expected=N))
    victim = next(p for p in provenance if p["request_id"] == records[5]["request_id"])
    forged = dict(victim, data_hash="0" * 64, preprocessing_version="fraud-features/0")
    registry = registry_from_settings(settings)
    encode = AvroSerializer(
        registry, registry.catalog.latest("provenance_record"), topics.provenance  # type: ignore[attr-defined]
    )
    # keyed like the worker's (murmur2): the forgery lands after the original on its partition
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap,
                         "partitioner": "murmur2_random"})  # fmt: skip
    producer.produce(topics.provenance, encode(forged), victim["request_id"].encode())
    assert producer.flush(30) == 0
    del producer

    report = replay(settings, "fraud", TimeRange(before, after))
    assert report["counts"]["data_hash_equal"] == N - 1
    (mismatch,) = report["fidelity"]["mismatches"]
    assert mismatch["request_id"] == victim["request_id"]
    assert mismatch["served_preprocessing"] == "fraud-features/0"
    assert mismatch["replayed_preprocessing"] == "fraud-features/1"
    assert report["agree"] is False


def test_sandbox_results_go_to_their_own_topic_marked_and_nothing_else_moves(served) -> None:
    settings, _, before, after = served
    topics = stream_topics("fraud", settings.topic_namespace)
    report = replay(settings, "fraud", TimeRange(before, after), sandbox=True)
    sandbox = report["sandbox_topic"]
    assert sandbox.startswith(f"{topics.prefix}.replay.")
    published = read_all(settings, sandbox, expected=N)
    assert len(published) == N
    assert {r.headers["replay"] for r in published} == {b"true"}
    requests = {(r.partition, r.offset): r.value["request_id"]
                for r in read_all(settings, topics.requests, expected=N)}  # fmt: skip
    for record in published:
        source = (int(record.headers["replay.source.partition"]),
                  int(record.headers["replay.source.offset"]))  # fmt: skip
        assert record.value["request_id"] == requests[source]
    # the served topics are as they were: a replay publishes nothing there
    assert len(read_all(settings, topics.results, idle_timeout=3)) == N
    assert len(read_all(settings, topics.provenance, idle_timeout=3)) == N


def test_request_ids_replay_exactly_those_requests(served, env, tmp_path: Path) -> None:
    settings, records, _, _ = served
    picked = [records[i]["request_id"] for i in (3, 77, 311, 599)]
    report = replay(settings, "fraud", request_ids=[*picked, "nowhere-1"])
    assert report["counts"]["in_range"] == report["counts"]["matched"] == 4
    assert report["request_ids"] == {"asked": 5, "not_found": 1, "not_found_first": ["nowhere-1"]}
    assert report["agree"] is True
    listed = tmp_path / "ids.txt"
    listed.write_text("# from the incident\n" + "\n".join(picked) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "fraud", "--request-ids", str(listed),
         "--quiet"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 requests in range" in done.stdout and "agrees" in done.stdout
    listed.write_text("nowhere-2\n")
    nowhere = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "fraud", "--request-ids", str(listed)],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert nowhere.returncode == 2 and "none of the 1 request ids is in" in nowhere.stderr
