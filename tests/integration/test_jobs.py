"""Document jobs through the real broker, Redis and a docs worker: exact counts and files,
a worker killed mid-job, a job submitted again, cancel, budget pause and resume, dedup."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT, Settings
from pipeline.kafka.admin import ensure_topics
from pipeline.redis.state import scan_keys
from tests.integration.helpers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

WORDS = [
    "kernel",
    "process",
    "memory",
    "page",
    "socket",
    "file",
    "system",
    "signal",
    "thread",
    "device",
    "driver",
]


@pytest.fixture
def docs_env(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    # a docs worker in a consumer group of its own; static membership so a restarted worker
    # gets its partitions back at once
    env["INFERSTREAM_APP_ID"] = env["INFERSTREAM_APP_ID"] + "-docs"
    env["INFERSTREAM_GROUP_INSTANCE_ID"] = "docs-w1"
    env["INFERSTREAM_CONSUMER_SESSION_TIMEOUT_MS"] = "6000"
    return env


@pytest.fixture
def docs_settings(docs_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in docs_env.items():
        if key.startswith("INFERSTREAM_"):
            monkeypatch.setenv(key, value)
    cfg = Settings.from_env()
    ensure_topics(cfg.kafka_bootstrap, ["docs"], cfg.topic_partitions, 1, cfg.topic_namespace)
    return cfg


@pytest.fixture
def docs_worker(docs_env: dict[str, str], docs_settings: Settings) -> Iterator[WorkerProcess]:
    process = WorkerProcess(docs_env, "docs").start(timeout=180)
    yield process
    process.stop()


def jobs(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "jobs", *args], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def status(env: dict[str, str], job_id: str) -> dict:
    done = jobs(env, "status", job_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def write_docs(path: Path, n: int, seed: int = 0, bad: bool = True) -> Path:
    lines = []
    for i in range(n):
        words = [WORDS[(i * 7 + k * 3 + seed) % len(WORDS)] for k in range(5 + i % 30)]
        text = f"Document {seed}-{i}: the " + " ".join(words) + "."
        lines.append(json.dumps({"id": f"doc-{i}", "text": text}))
    if bad:
        lines += [
            json.dumps({"id": "blank", "text": "   "}),
            "{not json",
            json.dumps({"id": "doc-0", "text": "a duplicate id"}),
            json.dumps({"text": "no id"}),
            json.dumps({"id": "nul", "text": "a\u0000b"}),
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def submit(env: dict[str, str], path: Path, *flags: str) -> str:
    done = jobs(env, "submit", str(path), "--detach", *flags)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[0]


def wait_state(
    env: dict[str, str], job_id: str, timeout: float = 180
) -> subprocess.CompletedProcess:
    return jobs(env, "wait", job_id, "--timeout", str(timeout), timeout=timeout + 60)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def files(env: dict[str, str], job_id: str, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    out, err = tmp_path / f"{job_id}.results.jsonl", tmp_path / f"{job_id}.errors.jsonl"
    assert jobs(env, "results", job_id, "-o", str(out)).returncode == 0
    assert jobs(env, "errors", job_id, "-o", str(err)).returncode == 0
    return read_jsonl(out), read_jsonl(err)


def test_a_job_completes_with_exact_counts_and_every_document_in_a_file(
    docs_env, docs_worker, tmp_path: Path
) -> None:
    n = 200
    path = write_docs(tmp_path / "in.jsonl", n)
    started = time.monotonic()
    done = jobs(docs_env, "submit", str(path), "--name", "exact")
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().splitlines()[0]
    s = status(docs_env, job_id)
    assert s["state"] == "completed"
    assert (s["total"], s["completed"], s["failed"]) == (n + 5, n, 5)
    assert s["cost_model_s"] > 0 and s["tokens"] > 0
    results, errors = files(docs_env, job_id, tmp_path)
    assert sorted(r["document_id"] for r in results) == sorted(f"doc-{i}" for i in range(n))
    assert all(len(r["embedding"]) == 384 and r["label"] for r in results)
    assert {e["reason"] for e in errors} == {
        "empty-text", "not-json", "duplicate-id", "missing-id", "binary-content"}  # fmt: skip
    assert len(errors) == 5
    print(f"\n{n + 5} documents: {wall:.1f} s wall, {n / wall:.1f} docs/s")


def test_a_killed_worker_loses_nothing_and_a_resubmit_does_nothing_twice(
    docs_env, docs_worker, tmp_path: Path
) -> None:
    n = 300
    path = write_docs(tmp_path / "in.jsonl", n, seed=1)
    job_id = submit(docs_env, path, "--name", "crash")
    assert wait_for(lambda: status(docs_env, job_id)["completed"] >= 40, 120, interval=0.3)
    docs_worker.kill9()
    docs_worker.start(timeout=180)
    assert wait_state(docs_env, job_id).returncode == 0
    s = status(docs_env, job_id)
    assert (s["completed"], s["failed"]) == (n, 5)
    results, _ = files(docs_env, job_id, tmp_path)
    assert len(results) == n and len({r["document_id"] for r in results}) == n
    tokens = s["tokens"]

    again = jobs(docs_env, "submit", str(path), "--name", "crash", "--detach")
    assert again.returncode == 0, again.stderr
    assert "sent 0" in again.stderr
    time.sleep(2)
    s2 = status(docs_env, job_id)
    assert (s2["completed"], s2["failed"], s2["tokens"]) == (n, 5, tokens)


def test_a_completed_job_submitted_with_more_documents_is_refused(
    docs_env, docs_worker, tmp_path: Path
) -> None:
    first = write_docs(tmp_path / "first.jsonl", 60, seed=2, bad=False)
    job_id = submit(docs_env, first, "--name", "grow")
    assert wait_state(docs_env, job_id).returncode == 0
    more = write_docs(tmp_path / "more.jsonl", 100, seed=2, bad=False)  # 60 + 40 new
    again = jobs(docs_env, "submit", str(more), "--name", "grow", "--detach")
    assert again.returncode == 2
    assert "40 more document(s)" in again.stderr and len(again.stderr.splitlines()) == 1
    assert status(docs_env, job_id)["completed"] == 60


def test_cancel_refuses_the_remaining_documents(docs_env, docs_worker, tmp_path: Path) -> None:
    # enough documents that the job cannot finish before `cancel` (a CLI process) takes effect
    # on a fast machine: 300 short ones were done in under 2 s
    n = 3000
    path = write_docs(tmp_path / "in.jsonl", n, seed=3, bad=False)
    job_id = submit(docs_env, path, "--name", "cancel-me")
    cancelled = jobs(docs_env, "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert wait_for(lambda: status(docs_env, job_id)["cancelled"] > 0, 60, interval=0.3)
    assert wait_for(
        lambda: (s := status(docs_env, job_id))["completed"] + s["cancelled"] == n, 120, 0.5
    )
    s = status(docs_env, job_id)
    assert s["state"] == "cancelled" and s["failed"] == 0
    waited = wait_state(docs_env, job_id, 10)
    assert waited.returncode == 1 and "cancelled" in waited.stderr
    _, errors = files(docs_env, job_id, tmp_path)
    assert {e["reason"] for e in errors} == {"job-cancelled"} and len(errors) == s["cancelled"]


def test_a_job_pauses_at_its_budget_and_resumes_to_completion(
    docs_env, docs_settings, tmp_path: Path
) -> None:
    from pipeline.jobs.cost import model_cost
    from pipeline.jobs.inputs import read_inputs
    from pipeline.models.manifest import resolve_model_dir

    # small engine windows (about 40 documents), so that the budget is crossed mid-job
    env = {**docs_env, "INFERSTREAM_MAX_BATCH_TOKENS": "256"}
    worker = WorkerProcess(env, "docs").start(timeout=180)
    try:
        n = 300
        path = write_docs(tmp_path / "in.jsonl", n, seed=4, bad=False)
        cost = model_cost(resolve_model_dir(docs_settings.models_dir, "docs"))
        texts = [d.text for d in read_inputs(path).documents]
        estimate = cost.estimate_tokens(texts) * cost.seconds_per_token
        budget = f"{estimate / 4:.6f}"
        job_id = submit(env, path, "--name", "budget", "--budget", budget)
        waited = wait_state(env, job_id)
        assert waited.returncode == 1 and "budget" in waited.stderr, waited.stderr
        s = status(env, job_id)
        assert s["state"] == "budget_exceeded"
        assert s["deferred"] > 0 and s["failed"] == 0 and s["completed"] + s["deferred"] == n
        assert s["cost_model_s"] >= float(budget)
        refused = jobs(env, "resume", job_id, "--detach")  # the same budget: still spent
        assert refused.returncode == 2 and "larger --budget" in refused.stderr

        resumed = jobs(env, "resume", job_id, "--budget", f"{estimate * 10:.6f}", "--detach")
        assert resumed.returncode == 0, resumed.stderr
        assert wait_state(env, job_id).returncode == 0
        s = status(env, job_id)
        assert (s["completed"], s["deferred"], s["failed"]) == (n, 0, 0)
        results, errors = files(env, job_id, tmp_path)
        assert len(results) == n and errors == []
    finally:
        worker.stop()


def test_identical_documents_of_a_second_job_are_cache_hits(
    docs_env, docs_worker, tmp_path: Path
) -> None:
    path = write_docs(tmp_path / "in.jsonl", 80, seed=5, bad=False)
    first = submit(docs_env, path, "--name", "dedup-1")
    assert wait_state(docs_env, first).returncode == 0
    second = submit(docs_env, path, "--name", "dedup-2")
    assert wait_state(docs_env, second).returncode == 0
    assert wait_for(lambda: status(docs_env, second)["cached"] == 80, 30, 0.5)
    assert status(docs_env, second)["completed"] == 80


def test_unknown_job_missing_input_and_unknown_stream_are_one_line_exit_2(
    docs_env, docs_settings, tmp_path: Path
) -> None:
    for args, message in [
        (("status", "job_nope"), "no job 'job_nope'"),
        (("submit", str(tmp_path / "missing.jsonl")), "no such file"),
        (("submit", str(tmp_path), "--stream", "nope"), "unknown stream"),
    ]:
        done = jobs(docs_env, *args, timeout=60)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], done.stderr


def test_a_job_redis_lost_is_rebuilt_from_the_topics(
    docs_env, docs_settings, docs_worker, tmp_path: Path
) -> None:
    import redis as redis_client

    path = write_docs(tmp_path / "in.jsonl", 50, seed=6)
    job_id = submit(docs_env, path, "--name", "lost")
    assert wait_state(docs_env, job_id).returncode == 0
    before = status(docs_env, job_id)
    client = redis_client.Redis.from_url(docs_settings.redis_url)
    keys = scan_keys(client, f"inferstream:jobs:{docs_settings.topic_namespace}:*")
    assert keys
    client.delete(*keys)  # Redis lost every job of the namespace
    after = status(docs_env, job_id)  # rebuilt from the journal, results and dead letters
    assert {k: after[k] for k in ("state", "total", "completed", "failed", "tokens")} == {
        k: before[k] for k in ("state", "total", "completed", "failed", "tokens")
    }
    assert after["completed"] == 50 and after["failed"] == 5
