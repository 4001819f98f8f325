"""The gateway's aiohttp application: submit, poll by id, health, OpenAPI.

Nothing here blocks the event loop: Redis calls (the one DegradingRedis client) run on a
small thread pool; small submissions are produced on the loop while librdkafka's queue has
room, bigger ones on the producer's own thread (producer.py); big submissions are checked on
a thread too. Every refusal is JSON `{"error": {"code",
"message", ...}}` with the right status; a dependency that fails is a 503 with Retry-After,
never a hang or a traceback. API keys are never logged or echoed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

from pipeline.config import Settings
from pipeline.core.breaker import CircuitBreaker
from pipeline.core.messages import DEGRADE_HEADER
from pipeline.gateway.index import DONE, PENDING, UNKNOWN, StatusStore, pending_entry
from pipeline.gateway.intake import Checked, StreamIntake
from pipeline.gateway.keys import hash_key
from pipeline.gateway.limits import Admission, Limits
from pipeline.gateway.openapi import openapi_spec
from pipeline.gateway.producer import GatewayProducer
from pipeline.gateway.shedding import refusal as refusal_for_lag
from pipeline.redis.client import DegradingRedis

log = logging.getLogger("inferstream.gateway")

JSON = "application/json"
# polling advice: start near 500 ms, back off, cap (the seeds' advice for async clients)
FIRST_POLL_MS, MAX_POLL_MS = 500, 5000
_KEY_CACHE = 10_000  # API key hash -> tenant, for looking up the tenant before admission


@dataclass
class Gateway:
    """Everything a request handler needs; built by `build_gateway`, owned by the app."""

    settings: Settings
    intakes: Mapping[str, StreamIntake]
    redis: DegradingRedis
    limits: Limits
    status: StatusStore
    producer: GatewayProducer | Any
    kafka_breaker: CircuitBreaker
    indexer: Any = None
    notifier: Any = None  # index.Notifier: wakes long polls
    lag: Any = None  # shedding.LagMonitor, when INFERSTREAM_GATEWAY_SHED_WAIT_S > 0
    metrics: Any = None  # pipeline.metrics.gateway.GatewayMetrics, unless INFERSTREAM_METRICS=off
    process_metrics: Any = None  # pipeline.metrics.ProcessMetrics: serves them (server.py)
    redis_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="gateway-redis")
    )
    counts: Counter[str] = field(default_factory=Counter)
    _tenants: OrderedDict[str, str] = field(default_factory=OrderedDict)
    _coalescers: dict[str, Coalescer] = field(default_factory=dict)
    # tenant -> (monotonic deadline, its refusal): refused here until then, see `throttled`
    _throttled: dict[str, tuple[float, Admission]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _cost_counters: dict[tuple[str, str], Any] = field(default_factory=dict)  # metric children

    async def in_pool(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.redis_pool, fn, *args)

    def coalescer(self, stream: str) -> Coalescer:
        found = self._coalescers.get(stream)
        if found is None:
            found = self._coalescers[stream] = Coalescer(self, stream)
        return found

    def remember(self, digest: str, tenant: str) -> None:
        self._tenants[digest] = tenant
        self._tenants.move_to_end(digest)
        while len(self._tenants) > _KEY_CACHE:
            self._tenants.popitem(last=False)

    def forget(self, digest: str) -> None:
        self._tenants.pop(digest, None)

    def throttle(self, tenant: str, admission: Admission, count: int) -> None:
        """Remember a rate refusal until the next request would fit: until then Redis would
        refuse every submission of the tenant too (its TAT only moves later, whichever
        gateway admits), so they are refused here without parsing, checks or a round trip -
        a tenant flooding the gateway past its limit costs the others as little as possible."""
        if len(self._throttled) > _KEY_CACHE:
            now = time.monotonic()
            self._throttled = {t: v for t, v in self._throttled.items() if v[0] > now}
        # the refusal said when `count` requests fit; one request fits (count - 1) intervals
        # earlier, and only a single-request refusal is held
        one_ms = admission.retry_after_ms - (count - 1) * 1000 / max(admission.rps, 1e-9)
        if one_ms > 0:
            self._throttled[tenant] = (time.monotonic() + one_ms / 1000, admission)

    def throttled(self, tenant: str) -> Admission | None:
        """The tenant's standing rate refusal with the time left, or None."""
        held = self._throttled.get(tenant)
        if held is None:
            return None
        left_ms = (held[0] - time.monotonic()) * 1000
        if left_ms <= 0:
            del self._throttled[tenant]
            return None
        return replace(held[1], retry_after_ms=left_ms)

    def breakers(self) -> dict[str, Any]:
        """The dependencies' breakers, for /metrics and /ready."""
        return {"kafka": self.kafka_breaker, "redis": RedisBreakerView(self.redis)}

    def limited(self, tenant: str, limit: str) -> None:
        self.counts[limit] += 1
        if self.metrics is not None:
            self.metrics.limited.labels(self.metrics.tenant(tenant), limit).inc()

    def cost(self, tenant: str, step: str, units: float) -> None:
        if self.metrics is not None and units > 0:
            counter = self._cost_counters.get((tenant, step))
            if counter is None:  # labels() costs a lock and a tuple per call: once per series
                if len(self._cost_counters) > _KEY_CACHE:
                    self._cost_counters.clear()
                counter = self.metrics.cost.labels(self.metrics.tenant(tenant), step)
                self._cost_counters[(tenant, step)] = counter
            counter.inc(units)


class RedisBreakerView:
    """The Redis client's own breaker (DegradingRedis: open while it is degraded) in the
    shape of a CircuitBreaker for the metrics: state and its transitions."""

    def __init__(self, redis: DegradingRedis) -> None:
        self.redis = redis

    @property
    def state(self) -> str:
        return "open" if self.redis.degraded else "closed"

    @property
    def transitions(self) -> dict[str, int]:
        periods = int(getattr(self.redis, "degraded_periods", 0))
        return {"closed->open": periods} if periods else {}


@dataclass(frozen=True)
class Ticket:
    """One submission on its way through the coalescer."""

    items: Sequence[Any]
    tenant: str
    digest: str  # the API key's hash
    idempotency_key: str
    fingerprint: str


Admitted = tuple[Checked, "list[Any] | None", "Admission | None"]


# batches of small submissions a stream may have waiting for Redis at once; the ones that
# arrive meanwhile are held and go together when it comes back (group commit: under load a
# batch grows instead of round trips, thread hand-offs and preprocessing calls multiplying;
# 5-20 % less gateway CPU a request in paired paced runs at 600-700/s)
_ADMITTING_MAX = 1


class Coalescer:
    """Small submissions that arrive in the same event-loop iteration (or while the previous
    batch waits for Redis) go through together: one preprocessing call, then one Redis round
    trip for all their cache lookups and admissions (one pipeline of script runs, each
    atomic, each reading its own cache entries) - the worker's batching idea, at the door.
    Per-call overhead, not per-row work, dominates a request of one row."""

    def __init__(self, gateway: Gateway, stream: str) -> None:
        self.gateway = gateway
        self.stream = stream
        self.intake = gateway.intakes[stream]
        self._waiting: list[tuple[Ticket, asyncio.Future[Admitted]]] = []
        self._admitting = 0  # batches waiting for Redis now

    async def submit(self, ticket: Ticket) -> Admitted:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Admitted] = loop.create_future()
        self._waiting.append((ticket, future))
        if len(self._waiting) == 1 and self._admitting < _ADMITTING_MAX:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            results = self.intake.check_many([(t.items, t.tenant) for t, _ in batch])
        except Exception as exc:
            _fail(batch, exc)
            return
        valid = []
        for (ticket, future), checked in zip(batch, results, strict=True):
            if checked.problems:
                future.set_result((checked, None, None))
            else:
                valid.append((ticket, future, checked))
        if valid:
            self._admitting += 1
            task = asyncio.ensure_future(self._admit(valid))
            self.gateway._tasks.add(task)
            task.add_done_callback(self.gateway._tasks.discard)

    async def _admit(self, valid: list[tuple[Ticket, asyncio.Future[Admitted], Checked]]) -> None:
        pairs = [(ticket, checked) for ticket, _, checked in valid]
        try:
            answers = await self.gateway.in_pool(lookup_and_admit, self.gateway, self.stream, pairs)
        except Exception as exc:
            _fail([(t, f) for t, f, _ in valid], exc)
            return
        finally:
            self._admitting -= 1
            if self._waiting and self._admitting < _ADMITTING_MAX:  # the ones held meanwhile
                asyncio.get_running_loop().call_soon(self._flush)
        for (_, future, checked), (rows, admission) in zip(valid, answers, strict=True):
            if not future.done():
                future.set_result((checked, rows, admission))


def _fail(batch: Sequence[tuple[Ticket, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def lookup_and_admit(
    gw: Gateway, stream: str, pairs: Sequence[tuple[Ticket, Checked]]
) -> list[tuple[list[Any] | None, Admission | None]]:
    """Cached rows and the admission of each submission (synchronous: on the Redis pool), in
    one round trip: each submission's admission script reads its requests' cached answers
    itself, and charges and marks pending only the others.

    (None, None) for all of them when Redis is unavailable."""
    intake = gw.intakes[stream]
    lookup = intake.cache_lookup([h for _, checked in pairs for h in checked.hashes])
    calls, offset = [], 0
    ttl = gw.settings.gateway_status_ttl_s
    for ticket, checked in pairs:
        count = len(checked.hashes)
        calls.append(
            {
                "key_digest": ticket.digest,
                "stream": stream,
                "count": len(checked.records),
                "cost": sum(checked.costs),  # the script leaves out what its cache answers
                "idempotency_key": ticket.idempotency_key,
                "fingerprint": ticket.fingerprint,
                "request_ids": [record["request_id"] for record in checked.records],
                "request_costs": checked.costs,
                "cache_names": lookup.names[offset : offset + count],
                "tagged": lookup.tagged,
                "pending": pending_entry(stream, ticket.tenant),
                "pending_ttl_s": ttl,
            }
        )
        offset += count
    admissions = gw.limits.admit_many(calls)
    if admissions is None:
        return [(None, None)] * len(pairs)
    per_rows = [
        [None] * len(checked.hashes) if admission.cached is None else lookup.rows(admission.cached)
        for (_, checked), admission in zip(pairs, admissions, strict=True)
    ]
    over = [j for j, admission in enumerate(admissions) if admission.outcome == "cost"]
    cheaper = intake.cheaper_fallback() if over else None
    if cheaper is not None:  # over budget: degraded to the cheaper route where it still fits
        version, units = cheaper
        again = []
        for j in over:
            checked = pairs[j][1]
            misses = [i for i, row in enumerate(per_rows[j]) if row is None]
            again.append(
                {
                    **calls[j],
                    "cost": units * len(misses),
                    "request_ids": [checked.records[i]["request_id"] for i in misses],
                    "request_costs": [units] * len(misses),
                    "cache_names": (),  # the rows found above are answered from the cache
                }
            )
        second = gw.limits.admit_many(again)  # the refusal wrote nothing: each run is atomic
        for j, admission in zip(over, second or [], strict=second is not None):
            admissions[j] = admission
            if admission.outcome == "ok":
                checked = pairs[j][1]
                checked.degraded_to = version
                checked.costs = [
                    units if row is None else cost
                    for row, cost in zip(per_rows[j], checked.costs, strict=True)
                ]
    return list(zip(per_rows, admissions, strict=True))


# -- answers ----------------------------------------------------------------------------------


def error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, headers=headers)


def unavailable(what: str, retry_after_s: int = 1) -> web.Response:
    return error(
        503,
        "unavailable",
        f"{what}; retry later",
        headers={"Retry-After": str(max(1, retry_after_s))},
    )


def _api_key(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    if value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def _unauthorized(message: str) -> web.Response:
    return error(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="inferstream"'}
    )


def _refusal(admission: Admission, stream: str) -> web.Response | None:
    """The answer for an admission outcome other than ok/replay, or None."""
    outcome = admission.outcome
    if outcome == "unknown":
        return _unauthorized("invalid API key")
    if outcome == "revoked":
        return _unauthorized("API key revoked")
    if outcome == "forbidden":
        return error(403, "forbidden", f"this API key may not use stream {stream!r}")
    if outcome == "conflict":
        return error(
            409,
            "idempotency-in-progress",
            "a request with this Idempotency-Key is still being processed",
            headers={"Retry-After": "1"},
        )
    if outcome == "taken":
        return error(
            409,
            "request-id-taken",
            f"request_id {admission.replay!r} is held by another tenant; choose another or "
            "leave it out",
            request_id=admission.replay,
        )
    if outcome == "mismatch":
        return error(
            422,
            "idempotency-mismatch",
            "this Idempotency-Key was used with a different request body",
        )
    if outcome in ("rate", "cost"):
        retry_s = max(1, int(-(-admission.retry_after_ms // 1000)))
        reason = (
            f"rate limit of {admission.rps:g} requests/s (burst {max(admission.burst, 1)}) reached"
            if outcome == "rate"
            else f"cost budget of {admission.cost_per_hour:g} units per hour reached"
        )
        headers = {**admission.headers(), "Retry-After": str(retry_s)}
        headers.setdefault("RateLimit", _exhausted(admission, outcome, retry_s))
        return error(
            429,
            "rate-limited" if outcome == "rate" else "budget-exceeded",
            reason,
            headers=headers,
            retry_after_ms=round(admission.retry_after_ms),
        )
    return None


def _exhausted(admission: Admission, outcome: str, retry_s: int) -> str:
    name = "requests" if outcome == "rate" else "cost"
    return f'"{name}";r=0;t={retry_s}'


# -- handlers ---------------------------------------------------------------------------------


async def submit(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    stream = request.match_info["stream"]
    intake = gw.intakes.get(stream)
    if intake is None:
        return error(
            404,
            "unknown-stream",
            f"this gateway serves no stream {stream!r}",
            streams=sorted(gw.intakes),
        )
    key = _api_key(request)
    if not key:
        return _unauthorized("an API key is required (Authorization: Bearer <key>)")
    digest = hash_key(key)
    known = gw._tenants.get(digest)
    standing = gw.throttled(known) if known is not None else None
    if standing is not None:  # over its rate limit: refused before the body is even read
        request["tenant"] = known
        refused = _refusal(standing, stream)
        if refused is not None:
            gw.limited(known, "rate")
            return refused
    limit_kb = gw.settings.gateway_max_body_kbytes
    if (request.content_length or 0) > limit_kb * 1024:
        return error(413, "too-large", f"request body over {limit_kb} KiB")
    if request.content_type != JSON:
        return error(
            415,
            "unsupported-media-type",
            f"Content-Type must be {JSON}, got {request.content_type!r}",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error(413, "too-large", f"request body over {limit_kb} KiB")
    try:
        body = _parse_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, "invalid-json", f"the body is not JSON: {exc}")
    items = body if isinstance(body, list) else [body]
    if not items:
        return error(400, "invalid-request", "an empty list of requests")
    if len(items) > gw.settings.gateway_max_requests:
        return error(
            413,
            "too-many-requests",
            f"{len(items)} requests in one POST, at most {gw.settings.gateway_max_requests}",
        )

    # the caller's tenant (the admission below checks the key again, atomically)
    tenant = gw._tenants.get(digest)
    if tenant is None:
        auth = await gw.in_pool(lambda: gw.limits.admit(digest, stream, 0, 0.0, auth_only=True))
        if auth is None:
            return unavailable("cannot verify the API key: Redis is unavailable")
        refused = _refusal(auth, stream)
        if refused is not None:
            return refused
        tenant = auth.tenant
        gw.remember(digest, tenant)
    request["tenant"] = tenant

    idem = request.headers.get("Idempotency-Key", "")
    if len(idem) > 200 or "\n" in idem:
        return error(400, "invalid-request", "Idempotency-Key must be at most 200 characters")
    fingerprint = (
        hashlib.blake2b(stream.encode() + b"\0" + raw, digest_size=16).hexdigest() if idem else ""
    )
    ticket = Ticket(items, tenant, digest, idem, fingerprint)
    if len(items) > 16 or intake.plugin.bind_preprocess is not None:  # heavy: off the loop
        checked = await asyncio.get_running_loop().run_in_executor(
            None, intake.check, items, tenant
        )
        if not checked.problems:
            ((rows, admission),) = await gw.in_pool(
                lookup_and_admit, gw, stream, [(ticket, checked)]
            )
    else:  # small: checked and admitted with the others that arrived in this loop iteration
        checked, rows, admission = await gw.coalescer(stream).submit(ticket)
    if checked.problems:
        gw.counts["invalid"] += 1
        return error(
            400,
            "invalid-request",
            _summary(checked),
            problems=[p.as_dict() for p in checked.problems],
        )
    cached = [] if rows is None else [i for i, row in enumerate(rows) if row is not None]
    hit = set(cached)
    misses = [i for i in range(len(checked.records)) if i not in hit]
    cost = sum(checked.costs[i] for i in misses)
    miss_ids = [checked.records[i]["request_id"] for i in misses]
    headers: dict[str, str] = {}
    if admission is None:  # Redis down: limits fail open for keys this process knows
        gw.counts["degraded"] += 1
        headers["Inferstream-Degraded"] = "redis: limits, cache and status unavailable"
    else:
        if admission.outcome in ("unknown", "revoked"):
            gw.forget(digest)
        if admission.outcome == "replay":
            gw.counts["replayed"] += 1
            status, _, stored = admission.replay.partition("\n")
            return web.Response(
                text=stored,
                status=int(status),
                content_type=JSON,
                headers={"Idempotent-Replayed": "true"},
            )
        refused = _refusal(admission, stream)
        if refused is not None:
            if admission.outcome in ("rate", "cost"):
                gw.limited(tenant, admission.outcome)
                if admission.outcome == "rate":
                    gw.throttle(tenant, admission, len(checked.records))
            else:
                gw.counts[admission.outcome] += 1
            return refused
        headers.update(admission.headers())
        if checked.degraded_to is not None:  # `cost` is the fallback's, as reserved
            headers["Inferstream-Degraded"] = (
                f"cost budget reached: served by the cheaper version {checked.degraded_to}"
            )
            gw.counts["budget_degraded"] += len(misses)
        gw.cost(tenant, "reserved", cost)

    results = intake.cached_results(checked, rows, cached) if cached else []  # type: ignore[arg-type]
    if results:
        entries = [
            (
                r["request_id"],
                {
                    "status": DONE,
                    "stream": stream,
                    "tenant": tenant,
                    "served_from": "cache",
                    "result": r,
                },
            )
            for r in results
        ]
        await gw.in_pool(gw.status.put_many, entries)
        gw.counts["cache_hits"] += len(results)

    if misses and admission is not None and gw.lag is not None:
        retry = refusal_for_lag(
            gw.lag.backlog(stream), gw.settings.gateway_shed_wait_s, admission.priority
        )
        if retry is not None:
            gw.limited(tenant, "shed")
            await gw.in_pool(
                gw.limits.refund, tenant, admission.cost_per_hour, cost, idem, miss_ids
            )
            gw.cost(tenant, "refunded", cost)
            backlog = gw.lag.backlog(stream)
            return error(
                503,
                "overloaded",
                f"stream {stream!r} has {backlog.lag} requests waiting; a new one would miss "
                f"its deadline",
                headers={"Retry-After": str(max(1, math.ceil(min(retry, 3600))))},
            )
    if misses:
        refusal = await _produce(
            gw, stream, [checked.records[i] for i in misses], tenant, checked.degraded_to
        )
        if refusal is not None:
            if admission is not None:
                await gw.in_pool(
                    gw.limits.refund, tenant, admission.cost_per_hour, cost, idem, miss_ids
                )
                gw.cost(tenant, "refunded", cost)
            return refusal
    gw.counts["accepted"] += len(misses)

    by_index = dict(zip(cached, results, strict=True))
    # a pending answer's fields after its id and URL (one dict literal a row: lists of 100)
    pending: dict[str, Any] = {"status": PENDING}
    if checked.degraded_to is not None:
        pending.update(degraded=True, model_version=checked.degraded_to)
    answers = []
    for i, record in enumerate(checked.records):
        request_id = record["request_id"]
        url = f"/v1/requests/{request_id}"
        if i in by_index:
            answers.append(
                {"request_id": request_id, "status_url": url, "status": DONE,
                 "served_from": "cache", "result": by_index[i]}
            )  # fmt: skip
        else:
            answers.append({"request_id": request_id, "status_url": url, **pending})
    code = 200 if not misses else 202
    payload: dict[str, Any] = {
        "stream": stream,
        "model_version": intake.model_version,
        "requests": answers,
    }
    if admission is None or checked.degraded_to is not None:
        payload["degraded"] = True
    answer_json = orjson.dumps(payload)  # ~5x json.dumps for a list's answers
    if idem and admission is not None:
        await gw.in_pool(
            gw.limits.store_replay,
            tenant,
            idem,
            fingerprint,
            f"{code}\n{answer_json.decode()}",
            gw.settings.gateway_idempotency_ttl_s,
        )
    if misses:
        headers["Retry-After"] = "1"
    return web.Response(
        body=answer_json, status=code, content_type=JSON, charset="utf-8", headers=headers
    )


async def _produce(
    gw: Gateway,
    stream: str,
    records: Sequence[dict[str, Any]],
    tenant: str,
    degraded_to: str | None = None,
) -> web.Response | None:
    breaker = gw.kafka_breaker
    if not breaker.allow():
        gw.counts["kafka_open"] += 1
        return unavailable("Kafka is unavailable (circuit open)", breaker.retry_after_s())
    timeout = gw.settings.gateway_produce_timeout_s + 1.0
    try:
        headers = {"tenant": tenant}
        if degraded_to is not None:  # the worker serves them with the policy's fallback
            headers[DEGRADE_HEADER] = "budget"
        async with asyncio.timeout(timeout):  # not wait_for: no task of its own per call
            await gw.producer.send(stream, records, headers)
    except Exception as exc:  # a timeout, a refusal, a delivery failure: all the breaker's
        breaker.failed(type(exc).__name__)
        gw.counts["kafka_failed"] += 1
        log.warning("produce to %s failed: %s: %s", stream, type(exc).__name__, exc)
        return unavailable("Kafka did not acknowledge the requests", breaker.retry_after_s())
    breaker.succeeded()
    return None


# 20 digits in a row: an integer that may not fit 64 bits (u64's largest has 20), which
# orjson would read as a float. Found as zeros after mapping every digit to 0 (a C scan of
# the body, ~10x faster than a regex's)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 20


def _parse_json(raw: bytes) -> Any:
    """The body as JSON: orjson (~3x json.loads), and json.loads for what orjson refuses or
    reads otherwise - NaN and Infinity, lone surrogates, every malformed body, and integers
    over 64 bits - so what is accepted, and the reason a body is refused, stay json.loads's."""
    if _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def _summary(checked: Checked) -> str:
    first = checked.problems[0]
    where = f"request {first.index}" + (f", field {first.field}" if first.field else "")
    more = len(checked.problems) - 1
    return f"{where}: {first.reason}" + (f" (and {more} more)" if more else "")


async def get_status(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    request_id = request.match_info["request_id"]
    key = _api_key(request)
    if not key:
        return _unauthorized("an API key is required (Authorization: Bearer <key>)")
    try:
        wait = float(request.query.get("wait", "0"))
    except ValueError:
        return error(400, "invalid-request", "wait must be a number of seconds")
    if not 0 <= wait < float("inf"):
        return error(400, "invalid-request", "wait must be a number of seconds >= 0")
    wait = min(wait, gw.settings.gateway_max_wait_s)
    if "\n" in request_id:
        return error(400, "invalid-request", "bad request id")
    digest = hash_key(key)
    auth = await gw.in_pool(
        lambda: gw.limits.admit(digest, "", 0, 0.0, auth_only=True, request_ids=[request_id])
    )
    if auth is None:
        return unavailable("request status is unavailable: Redis is unavailable")
    refused = _refusal(auth, "")
    if refused is not None:
        return refused
    tenant = request["tenant"] = auth.tenant
    entry = json.loads(auth.status) if auth.status else None
    deadline = time.monotonic() + wait
    while entry is not None and entry.get("status") == PENDING and time.monotonic() < deadline:
        await _settled_or(gw, request_id, min(1.0, deadline - time.monotonic()))
        found = await gw.in_pool(gw.status.get, request_id)
        if found is False:
            return unavailable("request status is unavailable: Redis is unavailable")
        entry = found  # type: ignore[assignment]
    if entry is None or (entry.get("tenant") and entry.get("tenant") != tenant):
        return web.json_response(
            {
                "request_id": request_id,
                "status": UNKNOWN,
                "message": "no such request for your tenant, or its status expired",
            },
            status=404,
        )
    body: dict[str, Any] = {"request_id": request_id, **entry}
    headers = {}
    if entry.get("status") == PENDING:
        age_ms = max(0.0, (time.time() - float(entry.get("submitted_at", time.time()))) * 1000)
        advice = min(MAX_POLL_MS, max(FIRST_POLL_MS, age_ms / 2))
        body["retry_after_ms"] = round(advice)
        headers["Retry-After"] = str(max(1, round(advice / 1000)))
    body.pop("submitted_at", None)
    return web.json_response(body, headers=headers)


async def _settled_or(gw: Gateway, request_id: str, timeout: float) -> None:
    """Until the notifier says `request_id` settled, or `timeout` seconds."""
    if gw.notifier is None:
        await asyncio.sleep(min(timeout, 0.1))
        return
    event = asyncio.Event()
    waiters = gw.notifier.waiters.setdefault(request_id, [])
    waiters.append(event)
    try:
        await asyncio.wait_for(event.wait(), max(0.0, timeout))
    except TimeoutError:
        pass
    finally:
        if event in waiters:
            waiters.remove(event)
        if not waiters:
            gw.notifier.waiters.pop(request_id, None)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    redis_up = not gw.redis.degraded
    kafka = gw.kafka_breaker.state
    indexing = gw.indexer is None or gw.indexer.assigned.is_set()
    ok = redis_up and kafka != "open" and indexing
    body = {
        "ready": ok,
        "redis": "up" if redis_up else "down",
        "kafka_breaker": kafka,
        "backlog": {
            name: {"lag": b.lag, "per_s": round(b.rate, 1)}
            for name, b in (gw.lag.backlogs.items() if gw.lag is not None else ())
        },
        "result_index": "assigned" if indexing else "waiting for partitions",
        "streams": {name: i.model_version for name, i in gw.intakes.items()},
        "counts": dict(gw.counts),
    }
    return web.json_response(body, status=200 if ok else 503)


async def openapi(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    return web.json_response(openapi_spec(sorted(gw.intakes)))


@web.middleware
async def measured(request: web.Request, handler: Any) -> web.StreamResponse:
    """Counts every answer by route, status and tenant; times submissions."""
    gw: Gateway = request.app["gateway"]
    if gw.metrics is None:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects (one_line_errors answers the rest)
        status = exc.status
        raise
    finally:
        route = request.match_info.route.name or "other"
        gw.metrics.answered(route, status, request.get("tenant"))
        if route == "submit":
            stream = request.match_info.get("stream", "")
            label = stream if stream in gw.intakes else "unknown"
            gw.metrics.submitted(label, time.perf_counter() - started)


@web.middleware
async def one_line_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """An unexpected exception is a 500 with one line, logged without request headers."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error(exc.status, "http", exc.reason)
        raise
    except Exception as exc:
        log.error(
            "unhandled %s on %s %s: %s", type(exc).__name__, request.method, request.path, exc
        )
        return error(500, "internal", "internal error")


def make_app(gateway: Gateway) -> web.Application:
    app = web.Application(
        client_max_size=gateway.settings.gateway_max_body_kbytes * 1024,
        middlewares=[measured, one_line_errors],
    )
    app["gateway"] = gateway
    app.router.add_post("/v1/streams/{stream}/requests", submit, name="submit")
    app.router.add_get("/v1/requests/{request_id}", get_status, name="status")
    app.router.add_get("/health", health, name="health")
    app.router.add_get("/healthz", health)
    app.router.add_get("/ready", ready, name="ready")
    app.router.add_get("/openapi.json", openapi, name="openapi")
    return app
