"""`inferstream demo` end to end, short: what `make demo` runs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.demo.run import DEMO_NAMESPACE
from tests.integration.helpers import pid_gone

pytestmark = pytest.mark.integration


def _demo(*flags: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "demo", *flags]


def _high_watermarks(bootstrap: str, topic: str) -> list[int] | None:
    """The end offset of each partition of `topic`; None when there is no such topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-test-watermarks"})
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None:
            return None
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sorted(found.partitions)
        ]
    finally:
        consumer.close()


def test_demo_scores_everything_it_produces_and_reports_latency(env, settings):
    done = subprocess.run(
        _demo("--seconds", "6", "--rate", "500"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout[done.stdout.index("demo summary") :]
    counts = re.search(r"produced ([\d,]+), scored ([\d,]+), dead letters ([\d,]+)", summary)
    produced, scored, dead = (int(g.replace(",", "")) for g in counts.groups())
    assert produced >= 2500 and scored == produced and dead == 0
    assert f"everything produced was scored: {produced:,} of {produced:,} answered" in summary
    assert re.search(r"p99 [\d.]+ ms", summary)
    assert "nan" not in done.stdout
    assert f"topics {settings.topic_namespace}fraud.*" in done.stdout  # the namespace it was given
    assert "inferstream replay fraud --from -10m" in done.stdout


def test_after_a_demo_replay_compares_another_version_in_a_page_a_browser_shows(
    env, settings, tmp_path
):
    """The replay acceptance: `replay fraud --from -10m --model-version <other>` after a demo."""
    from tests.integration.browser import dump_dom

    demo = subprocess.run(
        _demo("--seconds", "4", "--rate", "300", "--drift-shift", "0"), env=env,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    page = tmp_path / "replay.html"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "fraud", "--from", "-10m",
         "--model-version", "0.9.0", "--html", str(page), "--quiet"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "model versions: served {'1.0.0':" in done.stdout
    assert "replayed {'0.9.0':" in done.stdout
    assert "replay DIFFERS from what was served" in done.stdout  # another model, other scores
    dom = dump_dom(page)
    assert 'id="delta-vs-served-score"' in dom and 'id="confusion-vs-served-decision"' in dom
    assert "replay differs from what was served" in dom


def test_demo_stopped_by_sigterm_stops_its_workers_and_keeps_to_its_own_namespace(env, stack):
    env = dict(env)
    del env["INFERSTREAM_TOPIC_NAMESPACE"], env["INFERSTREAM_APP_ID"]  # the demo picks its own
    users_before = _high_watermarks(stack.bootstrap, "fraud.requests")
    demo_topic = f"{DEMO_NAMESPACE}fraud.requests"
    demo_before = sum(_high_watermarks(stack.bootstrap, demo_topic) or [0])
    proc = subprocess.Popen(
        _demo("--seconds", "120", "--rate", "300"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        pids: list[int] = []
        for line in proc.stdout:  # until the demo says which workers it started
            lines.append(line)
            found = re.search(r"worker pids: scoring (\d+), drift (\d+)", line)
            if found:
                pids = [int(g) for g in found.groups()]
                break
        assert pids, "".join(lines)
        assert all(not pid_gone(pid) for pid in pids)
        time.sleep(3)  # mid-run: producing and scoring
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = "".join(lines) + rest
    assert proc.returncode == 143, out
    assert "demo terminated (SIGTERM): its worker and drift worker were stopped" in out
    assert all(pid_gone(pid) for pid in pids), out
    group = f"{DEMO_NAMESPACE}inferstream-demo"  # the namespace prefixes group ids too
    assert f"topics {DEMO_NAMESPACE}fraud.* (consumer group {group})" in out
    assert sum(_high_watermarks(stack.bootstrap, demo_topic) or [0]) > demo_before
    assert _high_watermarks(stack.bootstrap, "fraud.requests") == users_before
