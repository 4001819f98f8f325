"""The gateway under a routing policy, with a real gateway process, Redis, the broker and a
worker: a tenant over its cost budget is degraded to the policy's cheaper fallback where the
budget still fits it, and refused only when nothing fits (the worker serves marked requests
with the fallback: provenance route `fallback-budget`, results degraded); and the fast path
answers a repeat under a cascade from the worker's cache, with the tier that served it."""

from __future__ import annotations

import json

import pytest

from pipeline.core.registry import stream_topics
from pipeline.models.manifest import ModelManifest, resolve_model_dir
from pipeline.stack.worker_process import WorkerProcess
from pipeline.tiers.costs import units_per_row
from tests.integration.helpers import read_all, values
from tests.integration.test_gateway import (
    GatewayProcess,
    keys,  # noqa: F401  (a fixture)
    poll_until_settled,
    submit,
    transaction,
)

pytestmark = pytest.mark.integration

SMALL, LARGE = "1.0.0-small.1", "1.0.0"


def units(root, version: str) -> float:
    directory = resolve_model_dir(root, "fraud", version)
    return units_per_row(ModelManifest.load(directory), directory)


def test_an_over_budget_tenant_is_served_by_the_cheaper_fallback_then_refused(
    env, settings, keys, models_dir  # noqa: F811  (keys: the imported fixture)
):
    (models_dir / "fraud" / "routing.json").write_text(
        json.dumps({"primary": LARGE, "fallback": SMALL})
    )
    large, small = units(models_dir, LARGE), units(models_dir, SMALL)
    assert 0 < small < large
    env = {**env, "INFERSTREAM_MODELS_DIR": str(models_dir)}
    key, _ = keys.add("thrifty", cost_per_hour=2 * large + 2 * small)
    gateway = GatewayProcess(env).start()
    worker = WorkerProcess(env).start()
    try:
        full = submit(gateway, [transaction(1), transaction(2)], key)
        assert full.status == 202 and "Inferstream-Degraded" not in full.headers, full
        assert not full.json.get("degraded")
        cheap = [submit(gateway, transaction(3 + i), key) for i in range(2)]
        for answer in cheap:  # the large model no longer fits the budget, the small one does
            assert answer.status == 202, answer
            assert SMALL in answer.headers["Inferstream-Degraded"]
            (request,) = answer.json["requests"]
            assert (request["degraded"], request["model_version"]) == (True, SMALL)
        refused = submit(gateway, transaction(9), key)  # not even the fallback fits now
        assert refused.status == 429 and refused.json["error"]["code"] == "budget-exceeded"

        full_ids = [r["request_id"] for r in full.json["requests"]]
        cheap_ids = [a.json["requests"][0]["request_id"] for a in cheap]
        for request_id, version, degraded in [
            *((i, LARGE, False) for i in full_ids), *((i, SMALL, True) for i in cheap_ids)
        ]:  # fmt: skip
            done = poll_until_settled(gateway, request_id, key).json
            assert done["status"] == "done", done
            assert (done["result"]["model_version"], done["result"]["degraded"]) == (
                version, degraded
            )  # fmt: skip
        spec = stream_topics("fraud", settings.topic_namespace)
        provenance = {
            p["request_id"]: p for p in values(read_all(settings, spec.provenance, expected=4))
        }
        assert {provenance[i]["route"] for i in cheap_ids} == {"fallback-budget"}
        assert [provenance[i]["cost_units"] for i in cheap_ids] == pytest.approx([small, small])
        assert {provenance[i]["route"] for i in full_ids} == {"primary"}
    finally:
        worker.stop()
        gateway.stop()


def test_without_a_cheaper_route_an_over_budget_tenant_is_refused(
    env, settings, keys, models_dir  # noqa: F811  (keys: the imported fixture)
):
    (models_dir / "fraud" / "routing.json").write_text(json.dumps({"primary": LARGE}))
    env = {**env, "INFERSTREAM_MODELS_DIR": str(models_dir)}
    key, _ = keys.add("no-fallback", cost_per_hour=units(models_dir, LARGE))
    gateway = GatewayProcess(env).start()
    try:
        assert submit(gateway, transaction(1), key).status == 202
        refused = submit(gateway, transaction(2), key)
        assert refused.status == 429 and refused.json["error"]["code"] == "budget-exceeded"
    finally:
        gateway.stop()


def test_under_a_cascade_a_repeat_is_answered_from_the_cache_with_its_tier(
    env, settings, keys, models_dir  # noqa: F811  (keys: the imported fixture)
):
    cascade = {"small": SMALL, "large": LARGE, "bands": [[0.0, 0.0095]]}  # some rows escalate
    (models_dir / "fraud" / "routing.json").write_text(
        json.dumps({"primary": LARGE, "cascade": cascade})
    )
    env = {**env, "INFERSTREAM_MODELS_DIR": str(models_dir)}
    key, _ = keys.add("acme-bank")
    gateway = GatewayProcess(env).start()
    worker = WorkerProcess(env).start()
    try:
        first = [submit(gateway, transaction(i), key) for i in range(6)]
        assert all(a.status == 202 for a in first), first
        served = [
            poll_until_settled(gateway, a.json["requests"][0]["request_id"], key).json
            for a in first
        ]
        assert all(s["status"] == "done" for s in served), served
        # both tiers answer some of these inputs (deterministic: fixed models and inputs)
        assert {s["result"]["model_version"] for s in served} == {SMALL, LARGE}
        for i, done in enumerate(served):  # the same inputs again: the worker cached them
            again = submit(gateway, transaction(i), key)
            assert again.status == 200, again
            (cached,) = again.json["requests"]
            assert cached["served_from"] == "cache"
            assert cached["result"]["model_version"] == done["result"]["model_version"]
            assert cached["result"]["score"] == pytest.approx(done["result"]["score"], abs=1e-6)
            assert cached["result"]["decision"] == done["result"]["decision"]
    finally:
        worker.stop()
        gateway.stop()
