"""The HTTP gateway as a process, spoken to over loopback by real HTTP clients, against the
suite's broker and Redis and, end to end, a real worker: submit -> poll -> done with the
worker's result, the cache fast path, refusals (400/413/415 with reasons, never produced),
API keys (401/403), rate and cost limits exactly at their boundaries (also under a
concurrent burst), idempotent retries, a dead letter's reason, a gateway restart while
requests are pending, Kafka down (breaker open, 503 at once) and Redis down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from pipeline.config import REPO_ROOT, Settings
from pipeline.gateway.keys import KeyStore, redis_prefix
from pipeline.redis.client import DegradingRedis
from pipeline.redis.state import scan_keys
from tests.integration.helpers import TopicTally, WorkerProcess, fraud_topics, wait_for


class GatewayProcess:
    """`inferstream gateway --port 0` as a child process; its port from its `ready` line."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.env = dict(env)
        self.args = [sys.executable, "-m", "pipeline", "gateway", "--port", "0", *extra]
        self.proc: subprocess.Popen[str] | None = None
        self.lines: deque[str] = deque(maxlen=500)
        self.port = 0
        self.metrics_url = ""
        self._ready = threading.Event()

    def start(self, timeout: float = 60) -> GatewayProcess:
        self._ready.clear()
        self.proc = subprocess.Popen(
            self.args, cwd=REPO_ROOT, env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gateway did not become ready:\n" + "\n".join(self.lines))
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line.rstrip())
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "ready":
                self.port = int(entry["port"])
                self.metrics_url = entry.get("metrics") or ""
                self._ready.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.text = body.decode()
        try:
            self.json: Any = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self) -> str:
        return f"<{self.status} {self.text[:300]}>"


def http(
    method: str,
    url: str,
    body: Any = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> Answer:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


def transaction(i: int, **changes: Any) -> dict[str, Any]:
    return {
        "card_id": f"card-{i % 7}", "account_id": f"acct-{i % 7}",
        "amount": round(10.0 + i * 1.37, 2), "currency": "EUR", "merchant_category": "5411",
        "merchant_country": "DE", "card_country": "DE", "channel": "POS",
        "event_time": 1736121610932 + i * 1000, "card_txn_count_1h": i % 5,
        "card_avg_amount_30d": 42.0, "seconds_since_last_txn": 600.0 + i, **changes,
    }  # fmt: skip


@pytest.fixture
def keys(settings: Settings) -> Iterator[KeyStore]:
    redis = DegradingRedis(settings.redis_url, retry_after_s=0.1, timeout_s=2.0)
    yield KeyStore(redis, settings.topic_namespace)
    names = scan_keys(redis.client, redis_prefix(settings.topic_namespace) + "*")
    if names:
        redis.client.delete(*names)


@pytest.fixture
def gateway(env: dict[str, str], settings: Settings) -> Iterator[GatewayProcess]:
    process = GatewayProcess(env).start()
    yield process
    process.stop()


def row_cost(settings: Settings) -> float:
    """What the gateway reserves per fraud request: the served version's measured cost."""
    from pipeline.models.manifest import ModelManifest, resolve_model_dir
    from pipeline.tiers.costs import units_per_row

    model_dir = resolve_model_dir(settings.models_dir, "fraud", None)
    row = units_per_row(ModelManifest.load(model_dir), model_dir)
    assert row > 0
    return row


def submit(gw: GatewayProcess, body: Any, key: str | None, **kwargs: Any) -> Answer:
    return http("POST", f"{gw.url}/v1/streams/fraud/requests", body, key, **kwargs)


def poll(gw: GatewayProcess, request_id: str, key: str, wait: float = 0) -> Answer:
    return http("GET", f"{gw.url}/v1/requests/{request_id}?wait={wait:g}", key=key)


def poll_until_settled(gw: GatewayProcess, request_id: str, key: str) -> Answer:
    deadline = time.monotonic() + 90
    while True:
        answer = poll(gw, request_id, key, wait=10)
        assert answer.status == 200, answer
        if answer.json["status"] != "pending" or time.monotonic() > deadline:
            return answer


def test_submit_poll_round_trip_with_a_restart_the_fast_path_and_a_dead_letter(
    env, settings, keys, gateway
):
    key, _ = keys.add("acme-bank")
    one = submit(gateway, transaction(1), key)
    assert one.status == 202, one
    (single,) = one.json["requests"]
    assert single["status"] == "pending" and single["status_url"].endswith(single["request_id"])
    listed = submit(gateway, [transaction(i) for i in range(2, 5)], key)
    assert listed.status == 202 and len(listed.json["requests"]) == 3
    ids = [single["request_id"]] + [r["request_id"] for r in listed.json["requests"]]
    pending = poll(gateway, ids[0], key)
    assert pending.json["status"] == "pending" and pending.headers["Retry-After"]
    assert pending.json["retry_after_ms"] >= 500

    gateway.stop()  # a restart while requests are pending: their status lives in Redis
    gateway.start()
    assert poll(gateway, ids[1], key).json["status"] == "pending"

    worker = WorkerProcess(env).start()
    try:
        done = [poll_until_settled(gateway, request_id, key) for request_id in ids]
        assert [d.json["status"] for d in done] == ["done"] * 4, done
        result = done[0].json["result"]
        assert done[0].json["served_from"] == "model"
        assert result["request_id"] == ids[0] and result["tenant"] == "acme-bank"
        assert result["decision"] in ("approve", "review", "decline")
        assert 0.0 <= result["score"] <= 1.0 and result["model_version"]

        again = submit(gateway, transaction(1), key)  # the same input: the worker cached it
        assert again.status == 200, again
        (cached,) = again.json["requests"]
        assert cached["status"] == "done" and cached["served_from"] == "cache"
        assert cached["result"]["score"] == pytest.approx(result["score"], abs=1e-6)
        assert cached["result"]["decision"] == result["decision"]
        assert cached["request_id"] != ids[0]
        recorded = poll(gateway, cached["request_id"], key)
        assert recorded.json["status"] == "done" and recorded.json["served_from"] == "cache"

        # an id reused for another payload: the worker dead-letters it; polling says why
        first = submit(gateway, transaction(50, request_id="dup-id-1"), key)
        assert poll_until_settled(gateway, "dup-id-1", key).json["status"] == "done", first
        assert submit(gateway, transaction(51, request_id="dup-id-1"), key).status == 202
        assert wait_for(
            lambda: poll(gateway, "dup-id-1", key).json["status"] == "failed", timeout=60
        )
        failed = poll(gateway, "dup-id-1", key).json
        assert failed["reason"] == "duplicate-request-id" and "dup-id-1" in failed["detail"]
    finally:
        worker.stop()
    unknown = poll(gateway, "never-submitted", key)
    assert unknown.status == 404 and unknown.json["status"] == "unknown"
    other_tenant, _ = keys.add("globex-pay")
    assert poll(gateway, ids[0], other_tenant).json["status"] == "unknown"
    assert key not in "\n".join(gateway.lines)  # keys are never logged


def test_bad_requests_are_refused_with_reasons_and_never_produced(env, settings, keys):
    gateway = GatewayProcess({**env, "INFERSTREAM_GATEWAY_MAX_BODY_KBYTES": "2",
                              "INFERSTREAM_GATEWAY_MAX_REQUESTS": "3"}).start()  # fmt: skip
    key, _ = keys.add("acme-bank")
    tally = TopicTally(settings.kafka_bootstrap, fraud_topics(settings.topic_namespace).requests)
    try:
        with tally:
            wrong_type = submit(gateway, transaction(1, amount="12.5"), key)
            assert wrong_type.status == 400
            assert {"index": 0, "field": "amount", "reason": "'12.5' is not a number"} in (
                wrong_type.json["error"]["problems"]
            )
            missing = {k: v for k, v in transaction(1).items() if k != "channel"}
            answer = submit(gateway, [transaction(2), missing], key)
            assert answer.status == 400  # one bad request: none of the list is produced
            assert answer.json["error"]["problems"] == [
                {"index": 1, "field": "channel", "reason": "missing"}
            ]
            worker_rule = submit(gateway, transaction(3, currency="eur"), key)
            assert worker_rule.status == 400
            assert worker_rule.json["error"]["problems"][0]["field"] == "currency"
            not_json = submit(gateway, None, key, raw=b"{not json")
            assert not_json.status == 400 and not_json.json["error"]["code"] == "invalid-json"
            text = submit(gateway, None, key, raw=b"amount=1", content_type="text/plain")
            assert text.status == 415 and "application/json" in text.json["error"]["message"]
            big = submit(gateway, transaction(4, merchant_category="x" * 4000), key)
            assert big.status == 413 and big.json["error"]["code"] == "too-large"
            many = submit(gateway, [transaction(i) for i in range(4)], key)
            assert many.status == 413 and many.json["error"]["code"] == "too-many-requests"
            assert submit(gateway, [], key).status == 400
            spec = http("GET", f"{gateway.url}/openapi.json").json
            assert "/v1/streams/{stream}/requests" in spec["paths"]
            assert http("GET", f"{gateway.url}/health").status == 200
            assert http("GET", f"{gateway.url}/ready").json["ready"] is True
            tally.wait_quiet(2.0, timeout=10)
            assert tally.total == 0
    finally:
        gateway.stop()


def test_api_keys_none_wrong_revoked_and_other_stream(settings, keys, gateway):
    key, info = keys.add("acme-bank", streams="fraud")
    docs_only, _ = keys.add("acme-bank", streams="docs")
    body = transaction(1)
    missing = submit(gateway, body, None)
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert submit(gateway, body, "isk_not-a-key").status == 401
    assert submit(gateway, body, docs_only).status == 403
    assert submit(gateway, body, key).status == 202
    subprocess.run(
        [sys.executable, "-m", "pipeline", "gateway", "keys", "revoke", info.key_id],
        env={**os.environ, "INFERSTREAM_TOPIC_NAMESPACE": settings.topic_namespace},
        check=True, capture_output=True, cwd=REPO_ROOT,
    )  # fmt: skip
    revoked = submit(gateway, transaction(2), key)
    assert revoked.status == 401 and "revoked" in revoked.json["error"]["message"]
    assert poll(gateway, "x", key).status == 401
    assert key not in "\n".join(gateway.lines)


def test_rate_and_cost_limits_hold_exactly_also_under_a_concurrent_burst(settings, keys, gateway):
    slow, _ = keys.add("slow-tenant", rps=0.001, burst=3)
    answers = [submit(gateway, transaction(i), slow) for i in range(4)]
    assert [a.status for a in answers] == [202, 202, 202, 429]
    limited = answers[3]
    assert limited.json["error"]["code"] == "rate-limited"
    assert int(limited.headers["Retry-After"]) > 900  # one request per 1,000 s
    assert limited.headers["RateLimit-Policy"] == '"requests";q=3;w=3000'
    assert answers[2].headers["RateLimit"].startswith('"requests";r=0;')

    row = row_cost(settings)  # the served version's measured cost of one fraud row
    budget, _ = keys.add("budget-tenant", cost_per_hour=5 * row)
    assert submit(gateway, [transaction(i) for i in range(10, 14)], budget).status == 202
    assert submit(gateway, [transaction(20), transaction(21)], budget).status == 429
    assert submit(gateway, transaction(22), budget).status == 202  # exactly the 5th unit
    over = submit(gateway, transaction(23), budget)
    assert over.status == 429 and over.json["error"]["code"] == "budget-exceeded"
    assert f'"cost";q={5 * row:g};w=3600' in over.headers["RateLimit-Policy"]

    burst, _ = keys.add("burst-tenant", cost_per_hour=50 * row)
    calm, _ = keys.add("calm-tenant")
    tally = TopicTally(settings.kafka_bootstrap, fraud_topics(settings.topic_namespace).requests)

    async def storm() -> tuple[list[int], list[int]]:
        url = f"{gateway.url}/v1/streams/fraud/requests"
        async with aiohttp.ClientSession() as session:

            async def one(i: int, key: str) -> int:
                headers = {"Authorization": f"Bearer {key}"}
                async with session.post(url, json=transaction(1000 + i), headers=headers) as r:
                    return r.status

            bursts = asyncio.gather(*(one(i, burst) for i in range(200)))
            calms = asyncio.gather(*(one(500 + i, calm) for i in range(20)))
            return list(await bursts), list(await calms)

    with tally:
        statuses, calm_statuses = asyncio.run(storm())
        assert statuses.count(202) == 50 and statuses.count(429) == 150  # 0 overspend
        assert calm_statuses == [202] * 20  # another tenant is not limited by it
        expected = 3 + 5 + 50 + 20  # every admitted request, and nothing else, produced
        assert wait_for(lambda: tally.total >= expected, timeout=30)
        tally.wait_quiet(2.0, timeout=15)
        assert tally.total == expected and tally.duplicates() == 0


def test_an_idempotent_retry_returns_the_same_ids_and_produces_once(settings, keys, gateway):
    key, _ = keys.add("acme-bank")
    body = [transaction(1), transaction(2)]
    headers = {"Idempotency-Key": "order-42"}
    tally = TopicTally(settings.kafka_bootstrap, fraud_topics(settings.topic_namespace).requests)
    with tally:
        first = submit(gateway, body, key, headers=headers)
        retry = submit(gateway, body, key, headers=headers)
        assert first.status == retry.status == 202
        assert retry.json == first.json and retry.headers["Idempotent-Replayed"] == "true"
        other = submit(gateway, [transaction(3)], key, headers=headers)
        assert other.status == 422 and other.json["error"]["code"] == "idempotency-mismatch"
        assert wait_for(lambda: tally.total >= 2, timeout=20)
        tally.wait_quiet(2.0, timeout=10)
        assert tally.total == 2


def test_kafka_down_opens_the_breaker_and_answers_503_at_once(env, settings, keys):
    key, _ = keys.add("acme-bank")
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    gateway = GatewayProcess({
        **env, "INFERSTREAM_KAFKA_BOOTSTRAP": dead, "INFERSTREAM_GATEWAY_PRODUCE_TIMEOUT_S": "1",
        "INFERSTREAM_GATEWAY_BREAKER_FAILURES": "2", "INFERSTREAM_GATEWAY_BREAKER_RESET_S": "60",
    }).start()  # fmt: skip
    try:
        failures = [submit(gateway, transaction(i), key) for i in range(2)]
        assert [f.status for f in failures] == [503, 503]
        assert all(f.headers["Retry-After"] for f in failures)
        assert "did not acknowledge" in failures[0].json["error"]["message"]
        opened = submit(gateway, transaction(3), key)
        assert opened.status == 503 and "circuit open" in opened.json["error"]["message"]
        assert 1 <= int(opened.headers["Retry-After"]) <= 60
        ready = http("GET", f"{gateway.url}/ready")
        assert ready.status == 503 and ready.json["kafka_breaker"] == "open"
        assert any("circuit breaker kafka: closed -> open" in line for line in gateway.lines)
    finally:
        gateway.stop()


def test_redis_down_submit_fails_open_for_known_keys_and_polling_says_so(env, settings, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    redis = DegradingRedis(url, retry_after_s=0.1, timeout_s=1.0)
    assert wait_for(lambda: redis.call(lambda c: c.ping()) is not None, timeout=10)
    key, _ = KeyStore(redis, settings.topic_namespace).add("acme-bank", rps=100)
    gateway = GatewayProcess({**env, "INFERSTREAM_REDIS_URL": url}).start()
    try:
        first = submit(gateway, transaction(1), key)
        assert first.status == 202 and "degraded" not in first.json
        server.terminate()
        server.wait(10)
        degraded = submit(gateway, transaction(2), key)  # a key this gateway already knows
        assert degraded.status == 202 and degraded.json["degraded"] is True
        assert "redis" in degraded.headers["Inferstream-Degraded"]
        stranger = submit(gateway, transaction(3), "isk_unknown-key")
        assert stranger.status == 503 and "Redis" in stranger.json["error"]["message"]
        status = poll(gateway, first.json["requests"][0]["request_id"], key)
        assert status.status == 503 and status.headers["Retry-After"]
    finally:
        gateway.stop()
        if server.poll() is None:
            server.terminate()
            server.wait(10)


def test_a_backlog_that_would_miss_the_deadline_is_shed_until_the_worker_catches_up(
    env, settings, keys
):
    key, _ = keys.add("acme-bank")
    gateway = GatewayProcess({**env, "INFERSTREAM_GATEWAY_SHED_WAIT_S": "2"}).start()
    worker = None
    try:
        assert all(submit(gateway, transaction(i), key).status == 202 for i in range(5))

        def backlog() -> int:
            return (
                http("GET", f"{gateway.url}/ready").json["backlog"].get("fraud", {}).get("lag", 0)
            )

        assert wait_for(lambda: backlog() >= 5, timeout=30)  # nobody scores: it never moves
        shed = submit(gateway, transaction(10), key)
        assert shed.status == 503 and shed.json["error"]["code"] == "overloaded"
        assert int(shed.headers["Retry-After"]) >= 1
        worker = WorkerProcess(env).start()
        assert wait_for(lambda: backlog() == 0, timeout=90)
        assert wait_for(lambda: submit(gateway, transaction(11), key).status == 202, timeout=30)
    finally:
        if worker is not None:
            worker.stop()
        gateway.stop()


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The gateway's /metrics, parsed: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = http("GET", f"{url}/metrics")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def answered(samples: dict, status: int, tenant: str, route: str = "submit") -> float:
    labels = (("route", route), ("status", str(status)), ("tenant", tenant))
    return samples.get(("inferstream_gateway_requests_total", labels), 0.0)


def test_metrics_count_answers_limits_and_the_breaker_and_prometheus_alerts_on_it(
    env, settings, keys, tmp_path, monkeypatch
):
    import pipeline.stack.prometheus as local_prometheus

    acme, _ = keys.add("acme-bank")
    slow, _ = keys.add("slow-tenant", rps=0.001, burst=1)
    with socket.socket() as s:  # Kafka where nothing listens: the breaker opens
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    targets = tmp_path / "targets"
    gateway = GatewayProcess({
        **env, "INFERSTREAM_KAFKA_BOOTSTRAP": dead, "INFERSTREAM_GATEWAY_PRODUCE_TIMEOUT_S": "1",
        "INFERSTREAM_GATEWAY_BREAKER_FAILURES": "1", "INFERSTREAM_GATEWAY_BREAKER_RESET_S": "600",
        "INFERSTREAM_METRICS_TARGETS_DIR": str(targets),
    }).start()  # fmt: skip
    monkeypatch.setattr(local_prometheus, "RULE_FILES", (local_prometheus.GATEWAY_RULES,))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        prom_port = s.getsockname()[1]
    prom = local_prometheus.LocalPrometheus(
        settings, port=prom_port, targets=targets, directory=tmp_path / "prometheus"
    )
    try:
        assert gateway.metrics_url.startswith("http://127.0.0.1:")  # loopback, not the API port
        assert http("GET", f"{gateway.url}/metrics").status == 404
        before = metric_samples(gateway.metrics_url)
        breaker = ("inferstream_gateway_breaker_open", (("dependency", "kafka"),))
        assert before[breaker] == 0
        assert submit(gateway, transaction(1), None).status == 401
        assert submit(gateway, transaction(2), acme).status == 503  # produce failed: opens
        assert submit(gateway, transaction(3), slow).status == 503  # circuit open
        assert submit(gateway, transaction(4), slow).status == 429  # its one request was used
        after = metric_samples(gateway.metrics_url)
        assert answered(after, 401, "none") == 1
        assert answered(after, 503, "acme-bank") == 1
        assert answered(after, 503, "slow-tenant") == 1
        assert answered(after, 429, "slow-tenant") == 1
        assert answered(after, 404, "none", route="other") == 1  # /metrics is not on this port
        limited = (("limit", "rate"), ("tenant", "slow-tenant"))
        assert after[("inferstream_gateway_limited_total", limited)] == 1
        latency = ("inferstream_gateway_submit_seconds_count", (("stream", "fraud"),))
        assert after[latency] == 4
        assert after[breaker] == 1
        moves = (("dependency", "kafka"), ("from", "closed"), ("to", "open"))
        assert after[("inferstream_gateway_breaker_transitions_total", moves)] == 1
        assert after[("inferstream_redis_up", ())] == 1
        assert acme not in http("GET", f"{gateway.metrics_url}/metrics").text

        # the stack's Prometheus finds the gateway in the targets directory (role gateway)
        # and its breaker alert goes pending at once (firing after `for: 1m`)
        prom.start(lambda line: print(f"[prometheus] {line}", file=sys.stderr))

        def query(expr: str) -> list[Any]:
            return prom.query(expr)

        assert wait_for(lambda: query('up{role="gateway"} == 1'), timeout=30, interval=0.5)
        count = 'sum(inferstream_gateway_requests_total{route="submit",tenant="slow-tenant"})'
        assert wait_for(lambda: query(count), timeout=30, interval=0.5)
        assert float(query(count)[0]["value"][1]) == 2
        alert = 'ALERTS{alertname="InferstreamGatewayBreakerOpen",dependency="kafka"}'
        assert wait_for(lambda: query(alert), timeout=30, interval=0.5)
        assert query(alert)[0]["metric"]["alertstate"] in ("pending", "firing")
    finally:
        prom.stop()
        gateway.stop()
    assert not list(targets.glob("*.json"))  # a stopped gateway removes its target


def test_a_request_id_held_by_another_tenant_is_refused_at_submit(settings, keys, gateway):
    acme, _ = keys.add("acme-bank")
    globex, _ = keys.add("globex-pay", cost_per_hour=1000)
    tally = TopicTally(settings.kafka_bootstrap, fraud_topics(settings.topic_namespace).requests)
    with tally:
        assert submit(gateway, transaction(1, request_id="order-7"), acme).status == 202
        taken = submit(gateway, [transaction(2), transaction(3, request_id="order-7")], globex)
        assert taken.status == 409, taken
        assert taken.json["error"]["code"] == "request-id-taken"
        assert "order-7" in taken.json["error"]["message"]
        assert "\n" not in taken.json["error"]["message"]
        # the refused list charged nothing and produced nothing; a fresh id goes through
        mine = submit(gateway, transaction(3, request_id="order-8"), globex)
        assert mine.status == 202 and mine.headers["RateLimit"].startswith('"cost";r=997;')
        assert wait_for(lambda: tally.total >= 2, timeout=20)
        tally.wait_quiet(2.0, timeout=10)
        assert tally.total == 2
    assert poll(gateway, "order-7", globex).json["status"] == "unknown"


def test_a_dead_letter_refunds_its_reservation_so_the_budget_is_what_was_served(
    env, settings, keys, gateway
):
    row = row_cost(settings)
    key, _ = keys.add("budget-tenant", cost_per_hour=2 * row)  # exactly two rows an hour
    worker = WorkerProcess(env).start()
    try:
        assert submit(gateway, transaction(1, request_id="dup-9"), key).status == 202
        assert poll_until_settled(gateway, "dup-9", key).json["status"] == "done"
        reservation = redis_prefix(settings.topic_namespace) + "resv:dup-9"
        assert wait_for(lambda: not keys.client.exists(reservation), timeout=30)
        # the same id again, another body: admitted (the second row), dead-lettered by the
        # worker (duplicate-request-id), so its reservation is refunded
        assert submit(gateway, transaction(2, request_id="dup-9"), key).status == 202
        assert wait_for(lambda: poll(gateway, "dup-9", key).json["status"] == "failed", 60)
        # exactly one row is free again: two do not fit, one does (the hour barely refills)
        assert submit(gateway, [transaction(3), transaction(4)], key).status == 429
        assert wait_for(lambda: submit(gateway, transaction(5), key).status == 202, 30, 0.5)
        assert submit(gateway, transaction(6), key).status == 429
    finally:
        worker.stop()
    samples = metric_samples(gateway.metrics_url)
    refunded = (("step", "refunded"), ("tenant", "budget-tenant"))
    assert samples[("inferstream_gateway_cost_units_total", refunded)] == pytest.approx(row)
