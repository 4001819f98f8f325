"""The supervisor's own /metrics: a restart counter per child slot, there at 0 from the start,
listed in the targets directory, valid exposition (promtool)."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from pipeline.metrics.supervisor import SupervisorMetrics
from pipeline.metrics.targets import read_targets
from tests.unit.metrics.test_metrics import promtool_check


def _restarts(body: bytes) -> dict[tuple[str, str], float]:
    return {
        (s.labels["stream"], s.labels["child"]): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
        if s.name == "inferstream_worker_restarts_total"
    }


def test_restarts_are_counted_per_child_and_served(tmp_path):
    settings = SimpleNamespace(metrics_bind="127.0.0.1", metrics_port=9, app_id="t",
                               metrics_targets_dir=str(tmp_path), state_dir=tmp_path)  # fmt: skip
    metrics = SupervisorMetrics(settings, "score", ["fraud", "docs"], 2)
    url = metrics.serve()
    try:
        assert not url.endswith(":9")  # a fixed port stays the first child's
        assert read_targets(tmp_path) == [url.removeprefix("http://")]
        body = urllib.request.urlopen(url + "/metrics", timeout=5).read()
        assert set(_restarts(body).values()) == {0.0} and len(_restarts(body)) == 4
        metrics.restarted(1)
        metrics.restarted(1)
        body = urllib.request.urlopen(url + "/metrics", timeout=5).read()
        got = _restarts(body)
        assert got[("fraud", "1")] == 2 and got[("docs", "1")] == 2 and got[("fraud", "0")] == 0
        promtool_check(body)
    finally:
        metrics.close()
    assert read_targets(tmp_path) == []
