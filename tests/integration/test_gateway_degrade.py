"""A tenant over its cost budget is degraded to the routing policy's cheaper fallback where the
budget still fits it, and refused only when nothing fits: a real gateway process, Redis, the
broker and a worker. The gateway reserves the fallback's cost and marks the requests; the
worker serves them with the fallback (provenance route `fallback-budget`, results degraded)."""

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
