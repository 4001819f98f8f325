"""Model tiers through the real broker and a worker subprocess: the cascade routes and escalates
as its band says, provenance names the tier of every request, shadow records appear for every
served request, and a policy rewritten mid-stream is taken without losing a request."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from pipeline.config import REPO_ROOT
from pipeline.core.registry import stream_topics
from pipeline.kafka.producer import RequestProducer
from pipeline.models.runtime import load_model
from pipeline.stack.worker_process import WorkerProcess
from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator
from pipeline.tiers.policy import escalated_mask, load_policy
from tests.integration.helpers import read_all, values

pytestmark = pytest.mark.integration

FRAUD = REPO_ROOT / "models" / "fraud"
SMALL, LARGE, CANDIDATE = "1.0.0-small.1", "1.0.0", "1.0.0-candidate.1"
BANDS = [[0.02, 0.3]]
N = 2000


def write_policy(models_dir, policy):
    path = models_dir / "fraud" / "routing.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(policy))
    tmp.replace(path)


def produce(settings, records):
    with RequestProducer(settings, stream_topics("fraud", settings.topic_namespace)) as p:
        return p.send_many(records)


def test_cascade_shadow_and_hot_reload_end_to_end(settings, env, models_dir, capsys):
    write_policy(
        models_dir,
        {
            "primary": LARGE,
            "shadow": [CANDIDATE],
            "cascade": {"small": SMALL, "large": LARGE, "bands": BANDS},
        },
    )
    first = load_policy(models_dir, "fraud")
    worker = WorkerProcess({**env, "INFERSTREAM_MODELS_DIR": str(models_dir)}).start()
    try:
        spec = stream_topics("fraud", settings.topic_namespace)
        records = TransactionGenerator(seed=21, fraud_share=0.05).generate(2 * N).records
        ids_a = produce(settings, records[:N])
        assert len(values(read_all(settings, spec.results, expected=N))) == N

        # mid-stream: the cascade off, primary only; the worker re-reads the file by itself
        write_policy(models_dir, {"primary": LARGE, "shadow": [CANDIDATE]})
        second = load_policy(models_dir, "fraud")
        time.sleep(1.5)  # the watcher looks at the file's mtime at most once a second
        ids_b = produce(settings, records[N:])

        results = values(read_all(settings, spec.results, expected=2 * N))
        provenance = values(read_all(settings, spec.provenance, expected=2 * N))
        shadow = values(read_all(settings, spec.shadow, expected=2 * N))
    finally:
        worker.stop()
    ids = ids_a + ids_b
    assert sorted(r["request_id"] for r in results) == sorted(ids), "nothing lost or doubled"
    assert sorted(p["request_id"] for p in provenance) == sorted(ids)
    assert read_all(settings, spec.dlq, idle_timeout=2) == []

    by_id = {p["request_id"]: p for p in provenance}
    result_by_id = {r["request_id"]: r for r in results}
    features = build_features(records).matrix
    small = load_model(FRAUD / SMALL).predict(features)[:, 1]
    band = escalated_mask(small, [tuple(b) for b in BANDS])
    policies = [by_id[i]["routing_policy"] for i in ids]
    assert policies[:N] == [first.digest] * N  # served before the rewrite
    assert policies[N:] == [second.digest] * N  # produced after it
    for i, rid in enumerate(ids):
        p, r = by_id[rid], result_by_id[rid]
        assert p["model_version"] == r["model_version"]
        if p["routing_policy"] == first.digest:
            want = ("cascade-large", True, LARGE) if band[i] else ("cascade-small", False, SMALL)
        else:
            want = ("primary", False, LARGE)
        assert (p["route"], p["escalated"], p["model_version"]) == want, (i, p)
        assert p["cost_units"] > 0
    cascade_rows = [i for i, rid in enumerate(ids) if policies[i] == first.digest]
    escalated = np.array([by_id[ids[i]]["escalated"] for i in cascade_rows])
    assert escalated.mean() == band[cascade_rows].mean()
    assert 0 < escalated.mean() < 1

    # one shadow record per served request, with the served output alongside
    assert sorted(s["request_id"] for s in shadow) == sorted(ids)
    for s in shadow:
        r = result_by_id[s["request_id"]]
        assert s["shadow_version"] == CANDIDATE
        assert (s["served_score"], s["served_decision"], s["served_version"]) == (
            r["score"],
            r["decision"],
            r["model_version"],
        )
        assert s["served_route"] == by_id[s["request_id"]]["route"]

    # the shadow report over the same topic, through the command line
    from pipeline.cli import main

    capsys.readouterr()
    assert main(["models", "shadow", "report", "--from", "-15m", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 2 * N
    flips = sum(s["flipped"] for s in shadow)
    assert report["versions"][CANDIDATE]["flips"] == flips
    assert report["versions"][CANDIDATE]["served_versions"] == sorted([SMALL, LARGE])


@pytest.mark.parametrize(
    ("candidate", "records", "outcome"),
    [("1.0.0-bad.1", 8000, "rolled-back"), (CANDIDATE, 16000, "promoted")],
)
def test_the_canary_gate_decides_by_itself_and_keeps_it_in_redis(
    settings, env, models_dir, candidate, records, outcome
):
    from pipeline.assembly import redis_client
    from pipeline.tiers.canary import CanaryStore, GateRule
    from pipeline.tiers.wiring import canary_prefix

    write_policy(models_dir, {"primary": LARGE,
                              "canary": {"version": candidate, "share_percent": 10}})  # fmt: skip
    worker = WorkerProcess({**env, "INFERSTREAM_MODELS_DIR": str(models_dir)}).start()
    try:
        spec = stream_topics("fraud", settings.topic_namespace)
        ids = produce(settings, TransactionGenerator(seed=31).generate(records).records)
        provenance = values(read_all(settings, spec.provenance, expected=records))
        # the decision is on <stream>.events once, delivered with a batch by the worker
        events = values(read_all(settings, spec.events, idle_timeout=3))
    finally:
        worker.stop()
    assert sorted(p["request_id"] for p in provenance) == sorted(ids)
    store = CanaryStore(redis_client(settings), canary_prefix(settings))
    state = store.load("fraud", LARGE, candidate, GateRule())
    assert state is not None and state.state == outcome, state and state.gate.verdict()
    event = state.events[-1]
    assert event["event"] == ("rollback" if outcome == "rolled-back" else "promote")
    # a decision is published once; before it, at most one `hold` (minimum sample reached,
    # still undecided) said how many more pairs the gate needed
    *held, published = events
    assert [e["kind"] for e in held] in ([], ["hold"]), events
    assert (published["kind"], published["automatic"]) == (event["event"], True)
    assert (published["stable"], published["candidate"]) == (LARGE, candidate)
    assert published["stream"] == "fraud" and published["share_percent"] == 10
    assert (published["pairs"], published["flips"]) == (event["pairs"], event["flips"])
    assert published["served_by_candidate"] == event["served_by_candidate"]
    assert published["reason"] == event["reason"] and published["worker"]
    served = [p for p in provenance if p["model_version"] == candidate]
    in_canary = [p for p in served if p["route"] == "canary"]
    assert len(in_canary) == state.served_by_candidate  # before the decision
    if outcome == "rolled-back":
        assert 0 < len(served) < GateRule().min_sample
        assert served == in_canary
    else:  # promoted: after the decision the candidate serves every request
        last = max(provenance, key=lambda p: p["served_at"])
        assert (last["model_version"], last["route"]) == (candidate, "primary")
        assert len(served) > len(in_canary)


def test_a_stream_started_without_a_policy_takes_its_first_one_and_caches_under_it(
    settings, env, models_dir
):
    """No routing.json at start; a cascade policy written mid-stream is taken without a
    restart, nothing is lost; the same transactions again are answered from the cache with
    the cascade's own answer (tier by tier), which the version-only key could not tell."""
    assert not (models_dir / "fraud" / "routing.json").exists()
    worker = WorkerProcess({**env, "INFERSTREAM_MODELS_DIR": str(models_dir)}).start()
    spec = stream_topics("fraud", settings.topic_namespace)
    n = 1000
    # a seed of this run's own: on a reused Redis, fixed transactions may be cached already
    records = TransactionGenerator(seed=time.time_ns() % 2**48, fraud_share=0.05).generate(2 * n)
    records = records.records
    try:
        ids_a = produce(settings, records[:n])
        assert len(read_all(settings, spec.results, expected=n)) == n
        write_policy(
            models_dir, {"primary": LARGE, "cascade": {"small": SMALL, "large": LARGE,
                                                      "bands": BANDS}},
        )  # fmt: skip
        policy = load_policy(models_dir, "fraud")
        time.sleep(1.5)  # the watcher looks at the file's mtime at most once a second
        ids_b = produce(settings, records[n:])
        assert len(read_all(settings, spec.results, expected=2 * n)) == 2 * n
        again = [{**r, "request_id": "again-" + r["request_id"]} for r in records[n:]]
        ids_c = produce(settings, again)
        results = values(read_all(settings, spec.results, expected=3 * n))
        provenance = values(read_all(settings, spec.provenance, expected=3 * n))
    finally:
        worker.stop()
    ids = ids_a + ids_b + ids_c
    assert sorted(r["request_id"] for r in results) == sorted(ids), "nothing lost or doubled"
    assert read_all(settings, spec.dlq, idle_timeout=2) == []
    by_id = {p["request_id"]: p for p in provenance}
    result_by_id = {r["request_id"]: r for r in results}
    before = [by_id[i] for i in ids_a]
    assert {(p["routing_policy"], p["route"], p["model_version"]) for p in before} == {
        ("", "primary", LARGE)
    }
    features = build_features(records[n:]).matrix
    band = escalated_mask(load_model(FRAUD / SMALL).predict(features)[:, 1],
                          [tuple(b) for b in BANDS])  # fmt: skip
    assert 0 < band.sum() < n
    for i, (rid, again_id) in enumerate(zip(ids_b, ids_c, strict=True)):
        first, repeat = by_id[rid], by_id[again_id]
        want = ("cascade-large", True, LARGE) if band[i] else ("cascade-small", False, SMALL)
        assert first["routing_policy"] == policy.digest, (i, first)
        assert (first["route"], first["escalated"], first["model_version"]) == want, (i, first)
        assert not first["cache_hit"]
        assert repeat["cache_hit"], (i, repeat)
        assert (repeat["route"], repeat["escalated"], repeat["model_version"]) == want
        assert result_by_id[again_id]["score"] == result_by_id[rid]["score"]
        assert result_by_id[again_id]["decision"] == result_by_id[rid]["decision"]


def test_a_decision_by_hand_is_stored_and_published_once(settings, models_dir, monkeypatch):
    from pipeline.assembly import redis_client
    from pipeline.cli import main
    from pipeline.tiers.canary import CanaryStore, GateRule
    from pipeline.tiers.wiring import canary_prefix

    write_policy(models_dir, {"primary": LARGE,
                              "canary": {"version": CANDIDATE, "share_percent": 10}})  # fmt: skip
    monkeypatch.setenv("INFERSTREAM_MODELS_DIR", str(models_dir))
    assert main(["models", "canary", "promote", "--reason", "looked fine on the dashboard"]) == 0
    spec = stream_topics("fraud", settings.topic_namespace)
    (event,) = values(read_all(settings, spec.events, idle_timeout=3))
    assert (event["kind"], event["automatic"], event["reason"]) == (
        "promote",
        False,
        "looked fine on the dashboard",
    )
    assert (event["stable"], event["candidate"]) == (LARGE, CANDIDATE)
    assert event["worker"].startswith("cli@")
    store = CanaryStore(redis_client(settings), canary_prefix(settings))
    assert store.load("fraud", LARGE, CANDIDATE, GateRule()).state == "promoted"
