"""Admission in one atomic Lua call: API key, stream grant, idempotency, rate, cost, pending.

Per request to the gateway, one script run in Redis decides, so that concurrent requests from
any number of gateway processes cannot pass a limit between a read and a write:

1. the key's hash names a stored key (else `unknown`), not revoked (`revoked`), that may use
   the stream (`forbidden`);
2. an `Idempotency-Key` already used by the tenant replays its stored answer (`replay`), is
   still in progress (`conflict`), or was used for another body (`mismatch`);
3. GCRA (the generic cell rate algorithm, a token bucket kept as one "theoretical arrival
   time" per tenant) for requests per second with a burst, then for cost units per hour with
   the whole hour's budget as its burst: a submission whose cost would pass the budget is
   refused (`rate` / `cost`, with when it would fit). The cost of a submission is reserved at
   admission (the estimate, pipeline/gateway/intake.py); `refund` gives back what was never
   produced, `settle` corrects it to what was served;
4. a caller-chosen request id whose status record belongs to another tenant is refused
   (`taken`), before anything is written;
5. the pending status of every request id is written (SET NX: a result indexed first wins),
   and, under a cost budget, each request's reservation (pushed on the list `resv:<id>`:
   tenant, budget, cost).

Settling (`settle`, called by the result index, pipeline/gateway/index.py): once the worker
served a request, its reservation is replaced by what it really cost - the provenance record's
`cost_units` (0 for a worker cache hit), 0 for a dead letter - so a tenant's budget reflects
what was served, not what was estimated. An unsettled reservation simply stays spent (the
GCRA forgets it within the hour); its key expires with the status TTL.

Time is Redis's own clock (TIME), so gateway hosts need no synchronised clocks. Keys are
built inside the script (a standalone Redis, as in pipeline/redis/request_ids.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipeline.redis.client import DegradingRedis

_ADMIT = r"""
local prefix, digest, stream = ARGV[1], ARGV[2], ARGV[3]
local n, cost, mode = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local rec = redis.call('HMGET', prefix .. 'key:' .. digest,
                       'tenant', 'streams', 'rps', 'burst', 'cost_per_hour', 'revoked', 'priority')
local priority = rec[7] or '0'
local tenant = rec[1]
if not tenant then return {'unknown'} end
if rec[6] == '1' then return {'revoked', tenant} end
local streams = rec[2] or '*'
local granted = string.find(',' .. streams .. ',', ',' .. stream .. ',', 1, true)
if stream ~= '' and streams ~= '*' and not granted then
  return {'forbidden', tenant}
end
local rps, burst, budget = tonumber(rec[3]) or 0, tonumber(rec[4]) or 0, tonumber(rec[5]) or 0
local info = {tostring(rps), tostring(burst), tostring(budget)}
if mode == 'auth' then
  local status = ''
  if ARGV[11] ~= '' then status = redis.call('GET', prefix .. 'req:' .. ARGV[11]) or '' end
  return {'ok', tenant, info[1], info[2], info[3], '-1', '0', '-1', '0', status, priority}
end

-- the fast path's cache (ARGV[13]: the worker's cache names of the submission's requests,
-- in order), read in this same call: a request answered there is neither charged nor given
-- a pending status, and the values found come back as the reply's last element
local all_ids, all_costs = {}, {}
for id in string.gmatch(ARGV[11], '([^\n]+)') do all_ids[#all_ids + 1] = id end
for c in string.gmatch(ARGV[12] or '', '([^\n]+)') do all_costs[#all_costs + 1] = c end
local found = nil
local ids, costs = all_ids, all_costs
if (ARGV[13] or '') ~= '' then
  local names = {}
  for name in string.gmatch(ARGV[13], '([^\n]+)') do names[#names + 1] = name end
  found = {}
  for i = 1, #names, 500 do  -- unpack's stack limit
    for _, v in ipairs(redis.call('MGET', unpack(names, i, math.min(i + 499, #names)))) do
      found[#found + 1] = v
    end
  end
  -- ARGV[14] 'tagged' (a cascade's scope): an answer counts only when its last float64 is
  -- the tier tag 0.0 (-0.0) or 1.0, as the gateway reads it (pipeline/gateway/intake.py)
  local tagged = ARGV[14] == 'tagged'
  local zero, negzero = string.rep('\0', 8), string.rep('\0', 7) .. '\128'
  local one = string.rep('\0', 6) .. '\240?'
  ids, costs, cost = {}, {}, 0
  for i, v in ipairs(found) do
    local hit = v and true or false
    if hit and tagged then
      local tail = string.sub(v, -8)
      hit = #v >= 8 and (tail == zero or tail == negzero or tail == one)
    end
    if not hit then
      ids[#ids + 1] = all_ids[i]
      costs[#costs + 1] = all_costs[i]
      cost = cost + tonumber(all_costs[i])
    end
  end
end

-- the decision (its body left unindented); its reply gets the cache's values appended below
local function decide()
local idem = ARGV[7]
local idem_key = prefix .. 'idem:' .. tenant .. ':' .. idem
if idem ~= '' then
  local held = redis.call('GET', idem_key)
  if held then
    local fp, body = string.match(held, '^([^\n]*)\n(.*)$')
    if fp ~= ARGV[8] then return {'mismatch', tenant} end
    if body == '' then return {'conflict', tenant} end
    return {'replay', tenant, body}
  end
end

-- a caller-chosen request id whose status another tenant holds is refused now, not later
-- as the worker's dead letter (the same tenant reusing one is the worker's rule to judge)
for _, id in ipairs(ids) do
  local held = redis.call('GET', prefix .. 'req:' .. id)
  if held then
    local ok, entry = pcall(cjson.decode, held)
    if ok and type(entry) == 'table' and type(entry.tenant) == 'string'
       and entry.tenant ~= tenant then
      return {'taken', tenant, id}
    end
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate_key, cost_key = prefix .. 'rate:' .. tenant, prefix .. 'cost:' .. tenant
local new_tat, interval, tau = now, 0, 0
local rate_left, rate_reset = -1, 0
if rps > 0 then
  interval = 1000 / rps
  tau = interval * math.max(burst, 1)
  local tat = tonumber(redis.call('GET', rate_key)) or now
  if tat < now then tat = now end
  new_tat = tat + n * interval
  if new_tat - now > tau + 1e-6 then
    return {'rate', tenant, string.format('%.3f', new_tat - tau - now), info[1], info[2], info[3]}
  end
  rate_left = math.floor((tau - (new_tat - now)) / interval + 1e-9)
  rate_reset = new_tat - now
end
local new_ctat, cinterval, ctau = now, 0, 3600000
local cost_left, cost_reset = -1, 0
if budget > 0 then
  cinterval = 3600000 / budget
  local ctat = tonumber(redis.call('GET', cost_key)) or now
  if ctat < now then ctat = now end
  new_ctat = ctat + cost * cinterval
  -- nothing to charge (every request answered from the cache) is never refused, even when
  -- settled costs above the estimates took the tenant past its budget
  if cost > 0 and new_ctat - now > ctau + 1e-6 then
    return {'cost', tenant, string.format('%.3f', new_ctat - ctau - now), info[1], info[2], info[3]}
  end
  cost_left = math.max(0, (ctau - (new_ctat - now)) / cinterval)
  cost_reset = new_ctat - now
end
if rps > 0 then
  redis.call('SET', rate_key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
if budget > 0 then
  local px = math.ceil(new_ctat - now) + 1000
  redis.call('SET', cost_key, string.format('%.3f', new_ctat), 'PX', px)
end
if idem ~= '' then redis.call('SET', idem_key, ARGV[8] .. '\n', 'EX', 60) end
local ttl, pending = ARGV[9], ARGV[10]
for i, id in ipairs(ids) do
  redis.call('SET', prefix .. 'req:' .. id, pending, 'NX', 'EX', ttl)
  -- the reservation of each request, settled (or refunded) once the worker served it; a
  -- list: the same tenant may reuse an id (the worker dead-letters the repeat), and each
  -- submission's reservation is then settled by one of the id's outcomes, none lost
  if budget > 0 and costs[i] and tonumber(costs[i]) > 0 then
    local name = prefix .. 'resv:' .. id
    redis.call('RPUSH', name, tenant .. '\n' .. rec[5] .. '\n' .. costs[i])
    redis.call('EXPIRE', name, ttl)
  end
end
return {'ok', tenant, info[1], info[2], info[3], tostring(rate_left),
        string.format('%.3f', rate_reset), string.format('%.6f', cost_left),
        string.format('%.3f', cost_reset), '', priority}
end

local out = decide()
if found then out[#out + 1] = found end
return out
"""

# give back the cost of a submission that was never produced (its reservation), and free its
# idempotency key so that a retry is admitted again; KEYS[3..]: its requests' reservations
_REFUND = r"""
local cost_key, budget, cost, idem_key = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), KEYS[2]
for i = 3, #KEYS do redis.call('RPOP', KEYS[i]) end  -- its own: the last one pushed
if budget > 0 and cost > 0 then
  local ctat = tonumber(redis.call('GET', cost_key))
  if ctat then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
    local back = math.max(now, ctat - cost * 3600000 / budget)
    redis.call('SET', cost_key, string.format('%.3f', back), 'PX', math.ceil(back - now) + 1000)
  end
end
if idem_key ~= '' then redis.call('DEL', idem_key) end
return 1
"""


# settle served requests against their reservations: ARGV = prefix, then (request id, served
# cost) pairs; a served cost of '' keeps the estimate. Each reservation is settled once (the
# oldest of the id's list is popped), so a result indexed again finds none - unless its tenant
# reused the id, when each outcome settles one submission's reservation. The cost TAT moves by
# (served - reserved) x the budget's interval: a refund never below now, a cost above the
# estimate is charged even past the budget (it was served).
_SETTLE = r"""
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local out = {}
for i = 2, #ARGV - 1, 2 do
  local held = redis.call('LPOP', prefix .. 'resv:' .. ARGV[i])  -- the oldest reservation
  if held then
    local tenant, budget, reserved = string.match(held, '^(.*)\n([^\n]*)\n([^\n]*)$')
    budget, reserved = tonumber(budget) or 0, tonumber(reserved) or 0
    local served = tonumber(ARGV[i + 1]) or reserved
    local delta = served - reserved
    if budget > 0 and delta ~= 0 then
      local cost_key = prefix .. 'cost:' .. tenant
      local ctat = tonumber(redis.call('GET', cost_key))
      if ctat or delta > 0 then
        ctat = math.max(ctat or now, now)
        local moved = math.max(now, ctat + delta * 3600000 / budget)
        redis.call('SET', cost_key, string.format('%.3f', moved), 'PX',
                   math.ceil(moved - now) + 1000)
      end
    end
    out[#out + 1] = tenant
    out[#out + 1] = string.format('%.6f', delta)
  end
end
return out
"""


@dataclass(frozen=True)
class Admission:
    """What the script decided; `outcome` is ok / unknown / revoked / forbidden / replay /
    conflict / mismatch / taken / rate / cost."""

    outcome: str
    tenant: str = ""
    rps: float = 0.0
    burst: int = 0
    cost_per_hour: float = 0.0
    retry_after_ms: float = 0.0
    rate_remaining: int = -1  # -1: unlimited
    rate_reset_ms: float = 0.0
    cost_remaining: float = -1.0
    cost_reset_ms: float = 0.0
    replay: str = ""  # the stored answer of an idempotent retry; `taken`: the request id
    status: str = ""  # auth-only reads of a request's status: its record (JSON) or ""
    priority: int = 0  # the key's load-shedding priority: higher is shed later
    # the values of the call's `cache_names`, in order (None where there is none); None
    # when it gave no names
    cached: Sequence[bytes | None] | None = None

    def headers(self) -> dict[str, str]:
        """IETF RateLimit-Policy / RateLimit headers (draft-ietf-httpapi-ratelimit-headers)."""
        policies, states = [], []
        if self.rps > 0:
            window = max(1, round(max(self.burst, 1) / self.rps))
            policies.append(f'"requests";q={max(self.burst, 1)};w={window}')
            if self.rate_remaining >= 0:
                states.append(f'"requests";r={self.rate_remaining};t={_ceil_s(self.rate_reset_ms)}')
        if self.cost_per_hour > 0:
            policies.append(f'"cost";q={_num(self.cost_per_hour)};w=3600')
            if self.cost_remaining >= 0:
                states.append(
                    f'"cost";r={int(self.cost_remaining)};t={_ceil_s(self.cost_reset_ms)}'
                )
        out = {}
        if policies:
            out["RateLimit-Policy"] = ", ".join(policies)
        if states:
            out["RateLimit"] = ", ".join(states)
        return out


def _ceil_s(ms: float) -> int:
    return max(0, int(-(-ms // 1000)))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class Limits:
    """The admission script through the one DegradingRedis client (synchronous: the gateway
    runs it on a thread, off its event loop). None from a call: Redis is unavailable."""

    def __init__(self, redis: DegradingRedis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._admit = redis.client.register_script(_ADMIT)
        self._refund = redis.client.register_script(_REFUND)
        self._settle = redis.client.register_script(_SETTLE)

    def admit(
        self,
        key_digest: str,
        stream: str,
        count: int,
        cost: float,
        *,
        idempotency_key: str = "",
        fingerprint: str = "",
        request_ids: Sequence[str] = (),
        pending: str = "",
        pending_ttl_s: int = 86400,
        auth_only: bool = False,
        request_costs: Sequence[float] = (),
        cache_names: Sequence[str] = (),
        tagged: bool = False,
    ) -> Admission | None:
        """One admission (see the module doc); None when Redis is unavailable.

        With `cache_names` (one per request id, in order: the worker's cache of each
        request's answer), the requests found there are left out of the charge (`cost` is
        then the sum of the others' `request_costs`) and of the pending statuses, and the
        values found come back as `cached`: the fast path's lookup in the same round trip.
        `tagged`: a value counts only with a tier tag (a cascade's scope)."""
        args = _args(
            self.prefix, key_digest, stream, count, cost, idempotency_key, fingerprint,
            request_ids, pending, pending_ttl_s, auth_only, request_costs, cache_names, tagged,
        )  # fmt: skip
        reply = self.redis.call(lambda client: self._admit(keys=[], args=args, client=client))
        return None if reply is None else _parse_reply(reply)

    def admit_many(self, calls: Sequence[Mapping[str, Any]]) -> list[Admission] | None:
        """Several admissions (each `admit`'s arguments as a mapping) in one round trip: each
        script run is still atomic on its own; None when Redis is unavailable."""
        if not calls:
            return []
        argv = [
            _args(
                self.prefix, c["key_digest"], c["stream"], c["count"], c["cost"],
                c.get("idempotency_key", ""), c.get("fingerprint", ""), c.get("request_ids", ()),
                c.get("pending", ""), c.get("pending_ttl_s", 86400), c.get("auth_only", False),
                c.get("request_costs", ()), c.get("cache_names", ()), c.get("tagged", False),
            )
            for c in calls
        ]  # fmt: skip

        replies = self.redis.call(lambda client: self._run_admits(client, argv))
        return None if replies is None else [_parse_reply(r) for r in replies]

    def _run_admits(self, client: Any, argv: Sequence[Sequence[Any]]) -> list[Any]:
        """The admission script once per `argv` entry, in one pipeline of EVALSHAs.

        Not redis-py's `Script(client=pipeline)`: that asks SCRIPT EXISTS before every
        pipeline, a second round trip per admission batch (a third of the gateway's Redis
        CPU per submit). A server that lost its scripts (restarted, flushed) answers NOSCRIPT:
        the script is loaded and only the runs that failed are run again (none of their
        effects happened)."""
        from redis.exceptions import NoScriptError  # redis-py, imported where used

        script = self._admit
        pipe = client.pipeline(transaction=False)
        for args in argv:
            pipe.evalsha(script.sha, 0, *args)
        replies = pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            script.sha = client.script_load(script.script)
            pipe = client.pipeline(transaction=False)
            for i in missing:
                pipe.evalsha(script.sha, 0, *argv[i])
            for i, reply in zip(missing, pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        for reply in replies:  # any other error: Redis is failing (DegradingRedis decides)
            if isinstance(reply, Exception):
                raise reply
        return replies

    def refund(
        self,
        tenant: str,
        cost_per_hour: float,
        cost: float,
        idempotency_key: str,
        request_ids: Sequence[str] = (),
    ) -> None:
        """Give back a submission's reservation (it was never produced)."""
        keys = [
            self.prefix + "cost:" + tenant,
            self.prefix + "idem:" + tenant + ":" + idempotency_key if idempotency_key else "",
            *(self.prefix + "resv:" + rid for rid in request_ids),
        ]
        args = [repr(float(cost_per_hour)), repr(float(cost))]
        self.redis.call(lambda client: self._refund(keys=keys, args=args, client=client))

    def settle(self, served: Sequence[tuple[str, float | None]]) -> list[tuple[str, float]] | None:
        """Settle requests the worker served: (request id, served cost units; 0 for a dead
        letter or a cache hit, None to keep the estimate). (tenant, served - reserved) of each
        reservation settled now; None when Redis is unavailable (the caller retries)."""
        if not served:
            return []
        args: list[Any] = [self.prefix]
        for request_id, cost in served:
            args += [request_id, "" if cost is None else repr(float(cost))]
        reply = self.redis.call(lambda client: self._settle(keys=[], args=args, client=client))
        if reply is None:
            return None
        values = _strings(reply)
        return [(values[i], float(values[i + 1])) for i in range(0, len(values), 2)]

    def store_replay(
        self, tenant: str, idempotency_key: str, fingerprint: str, body: str, ttl_s: int
    ) -> None:
        """The answer an idempotent retry gets from now on."""
        name = self.prefix + "idem:" + tenant + ":" + idempotency_key
        self.redis.call(lambda client: client.set(name, fingerprint + "\n" + body, ex=ttl_s))


def _args(
    prefix: str,
    key_digest: str,
    stream: str,
    count: int,
    cost: float,
    idempotency_key: str,
    fingerprint: str,
    request_ids: Sequence[str],
    pending: str,
    pending_ttl_s: int,
    auth_only: bool,
    request_costs: Sequence[float] = (),
    cache_names: Sequence[str] = (),
    tagged: bool = False,
) -> list[Any]:
    ids = "\n".join(request_ids)
    if ids.count("\n") != max(len(request_ids) - 1, 0):
        raise ValueError(f"a request_id of {list(request_ids)!r} contains a newline")
    if cache_names and not len(cache_names) == len(request_ids) == len(request_costs):
        raise ValueError("cache_names needs one name, request id and cost per request")
    return [
        prefix, key_digest, stream, count, repr(float(cost)), "auth" if auth_only else "admit",
        idempotency_key, fingerprint, pending_ttl_s, pending, ids,
        "\n".join(repr(float(c)) for c in request_costs), "\n".join(cache_names),
        "tagged" if tagged else "",
    ]  # fmt: skip


def _parse_reply(reply: Sequence[Any]) -> Admission:
    """The script's reply: its decision, and the cache's values when it was given names (the
    one nested list, always last)."""
    if reply and isinstance(reply[-1], list):
        return replace(_parse(_strings(reply[:-1])), cached=reply[-1])
    return _parse(_strings(reply))


def _strings(reply: Sequence[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in reply]


def _parse(reply: list[str]) -> Admission:
    outcome = reply[0]
    tenant = reply[1] if len(reply) > 1 else ""
    if outcome in ("replay", "taken"):
        return Admission(outcome, tenant, replay=reply[2])
    if outcome in ("rate", "cost"):
        return Admission(
            outcome,
            tenant,
            rps=float(reply[3]),
            burst=int(float(reply[4])),
            cost_per_hour=float(reply[5]),
            retry_after_ms=float(reply[2]),
        )
    if outcome == "ok":
        return Admission(
            outcome,
            tenant,
            rps=float(reply[2]),
            burst=int(float(reply[3])),
            cost_per_hour=float(reply[4]),
            rate_remaining=int(float(reply[5])),
            rate_reset_ms=float(reply[6]),
            cost_remaining=float(reply[7]),
            cost_reset_ms=float(reply[8]),
            status=reply[9] if len(reply) > 9 else "",
            priority=int(reply[10]) if len(reply) > 10 and reply[10].isdigit() else 0,
        )
    return Admission(outcome, tenant)
