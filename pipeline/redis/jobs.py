"""The job store and the admission rule of document jobs, in Redis.

Per job, under `inferstream:jobs:<namespace>:<job id>:`:
    spec       the JobSpec as JSON (also journalled to the `<ns>jobs` topic)
    state      hash: state, total, budget, spt (seconds per token), tokens, timestamps
    done       set of completed document ids       cached     set of those from the cache
    failed     hash document id -> {"reason", "detail"}
    deferred   set refused for the budget           cancelled  set refused after a cancel
plus the set `inferstream:jobs:<namespace>:index` of job ids.

Counting is idempotent: a document is counted once however often its result or dead letter
is read (sets, and tokens added only when a document first joins `done`), so at-least-once
delivery and a resubmitted job never count twice. A batch of events is one Lua call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from pipeline.jobs.events import REFUSED_BUDGET, REFUSED_CANCELLED, JobEvent
from pipeline.jobs.exceptions import JobError
from pipeline.jobs.progress import JobCounts, JobSnapshot
from pipeline.jobs.spec import JobSpec, now_ms
from pipeline.redis.client import DegradingRedis

# (The keys are built inside the scripts, so this assumes a standalone Redis, not a cluster,
# as pipeline/redis/request_ids.py does.)
_APPLY = r"""
local p, now = ARGV[1], ARGV[2]
local touched, order = {}, {}
local i = 3
while i <= #ARGV do
  local kind, job, doc, tokens, info = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  i = i + 5
  local k = p .. job .. ':'
  if kind == 'done' then
    if redis.call('SADD', k .. 'done', doc) == 1 then
      redis.call('HINCRBY', k .. 'state', 'tokens', tokens)
      redis.call('HDEL', k .. 'failed', doc)
      redis.call('SREM', k .. 'deferred', doc)
      redis.call('SREM', k .. 'cancelled', doc)
    end
  elseif kind == 'cached' then
    redis.call('SADD', k .. 'cached', doc)
  elseif redis.call('SISMEMBER', k .. 'done', doc) == 0 then
    if kind == 'failed' then
      redis.call('HSET', k .. 'failed', doc, info)
      redis.call('SREM', k .. 'deferred', doc)
      redis.call('SREM', k .. 'cancelled', doc)
    elseif redis.call('HEXISTS', k .. 'failed', doc) == 0 then
      if kind == 'deferred' then
        redis.call('SADD', k .. 'deferred', doc)
      else
        redis.call('SADD', k .. 'cancelled', doc)
        redis.call('SREM', k .. 'deferred', doc)
      end
    end
  end
  if kind ~= 'cached' then
    redis.call('HSETNX', k .. 'state', 'first_output_ms', now)
    redis.call('HSET', k .. 'state', 'last_output_ms', now)
  end
  if not touched[job] then
    touched[job] = true
    order[#order + 1] = job
  end
end
return order
"""

# Move a job's state only from the state it was read in: a cancel between the tracker's read
# and its write is never overwritten.
_MOVE = r"""
local key, expected, new = KEYS[1], ARGV[1], ARGV[2]
local current = redis.call('HGET', key, 'state')
if current ~= expected then return 0 end
redis.call('HSET', key, 'state', new, 'state_at_ms', ARGV[3])
return 1
"""

_STATE_FIELDS = ("state", "total", "tokens", "started_ms", "first_output_ms", "last_output_ms")


class JobStore:
    """Jobs of one topic namespace. Reads return None and writes False when Redis is down."""

    def __init__(self, redis: DegradingRedis, namespace: str = "") -> None:
        self.redis = redis
        self.prefix = f"inferstream:jobs:{namespace}:"
        self._apply = redis.client.register_script(_APPLY)
        self._move = redis.client.register_script(_MOVE)

    def _key(self, job_id: str, part: str) -> str:
        return f"{self.prefix}{job_id}:{part}"

    # -- specs -----------------------------------------------------------------------------
    def put_spec(self, spec: JobSpec, state: str | None = None) -> bool:
        """Write the spec (and the fields admission reads); `state` sets the state too."""
        mapping: dict[str, Any] = {
            "total": spec.total,
            "spt": repr(spec.seconds_per_token),
            "budget": "" if spec.budget is None else repr(spec.budget),
        }
        if state is not None:
            mapping["state"] = state
            mapping["state_at_ms"] = now_ms()

        def put(client: Any) -> bool:
            pipe = client.pipeline(transaction=True)
            pipe.set(self._key(spec.job_id, "spec"), spec.to_json())
            pipe.hset(self._key(spec.job_id, "state"), mapping=mapping)
            pipe.hsetnx(self._key(spec.job_id, "state"), "created_ms", spec.created_at_ms)
            pipe.sadd(f"{self.prefix}index", spec.job_id)
            pipe.execute()
            return True

        return bool(self.redis.call(put))

    def spec(self, job_id: str) -> JobSpec | None:
        raw = self.redis.call(lambda client: client.get(self._key(job_id, "spec")))
        return None if raw is None else JobSpec.from_json(raw)

    def job_ids(self) -> list[str] | None:
        found = self.redis.call(lambda client: client.smembers(f"{self.prefix}index"))
        return None if found is None else sorted(v.decode() for v in found)

    def known(self, job_ids: Sequence[str]) -> dict[str, bool] | None:
        """Per job, whether the store holds its spec (False: lost with Redis, or never seen)."""

        def check(client: Any) -> list[int]:
            pipe = client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.exists(self._key(job_id, "spec"))
            return pipe.execute()

        found = self.redis.call(check)
        return None if found is None else {j: bool(n) for j, n in zip(job_ids, found, strict=True)}

    def mark_started(self, job_id: str) -> bool:
        return bool(
            self.redis.call(
                lambda c: c.hsetnx(self._key(job_id, "state"), "started_ms", now_ms()) is not None
            )
        )

    # -- state -----------------------------------------------------------------------------
    def state(self, job_id: str) -> str | None:
        raw = self.redis.call(lambda client: client.hget(self._key(job_id, "state"), "state"))
        return None if raw is None else raw.decode()

    def move(self, job_id: str, expected: str, new: str) -> bool:
        """Set the state to `new` if it is still `expected`; False otherwise or Redis down."""
        key = self._key(job_id, "state")
        args = [expected, new, now_ms()]
        return bool(self.redis.call(lambda c: self._move(keys=[key], args=args, client=c)))

    def force_state(self, job_id: str, state: str) -> bool:
        """Set the state whatever it was (cancel, resume: the caller checked the move)."""
        key = self._key(job_id, "state")
        return bool(
            self.redis.call(
                lambda c: c.hset(key, mapping={"state": state, "state_at_ms": now_ms()}) >= 0
            )
        )

    def snapshot(self, job_id: str) -> JobSnapshot | None:
        """Spec, state and counts in one round trip; None when unknown or Redis is down."""

        def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.get(self._key(job_id, "spec"))
            pipe.hmget(self._key(job_id, "state"), _STATE_FIELDS)
            pipe.scard(self._key(job_id, "done"))
            pipe.hlen(self._key(job_id, "failed"))
            pipe.scard(self._key(job_id, "deferred"))
            pipe.scard(self._key(job_id, "cancelled"))
            pipe.scard(self._key(job_id, "cached"))
            return pipe.execute()

        found = self.redis.call(read)
        if found is None or found[0] is None:
            return None
        raw_spec, fields, done, failed, deferred, cancelled, cached = found
        spec = JobSpec.from_json(raw_spec)
        state, _total, tokens, started, first, last = (
            None if v is None else v.decode() for v in fields
        )
        counts = JobCounts(
            total=spec.total,
            completed=done,
            failed=failed,
            deferred=deferred,
            cancelled=cancelled,
            cached=cached,
            tokens=int(tokens or 0),
        )
        return JobSnapshot(
            spec, state or "validating", counts, _int(started), _int(first), _int(last)
        )

    # -- documents -------------------------------------------------------------------------
    def apply(self, events: Sequence[JobEvent]) -> list[str] | None:
        """Count a batch of events (one Lua call); the jobs they touched, None: Redis down."""
        if not events:
            return []
        args: list[Any] = [self.prefix, now_ms()]
        for e in events:
            args += [e.kind, e.job, e.doc, e.tokens, e.info]
        found = self.redis.call(lambda client: self._apply(keys=[], args=args, client=client))
        return None if found is None else [v.decode() for v in found]

    def settled_documents(self, job_id: str) -> set[str] | None:
        """Documents completed or failed: what a resubmitted job does not send again."""

        def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.smembers(self._key(job_id, "done"))
            pipe.hkeys(self._key(job_id, "failed"))
            return pipe.execute()

        found = self.redis.call(read)
        if found is None:
            return None
        return {v.decode() for v in found[0]} | {v.decode() for v in found[1]}

    def completed(self, job_id: str) -> set[str] | None:
        found = self.redis.call(lambda client: client.smembers(self._key(job_id, "done")))
        return None if found is None else {v.decode() for v in found}

    def failures(self, job_id: str) -> dict[str, dict[str, str]] | None:
        found = self.redis.call(lambda client: client.hgetall(self._key(job_id, "failed")))
        if found is None:
            return None
        return {k.decode(): json.loads(v) for k, v in found.items()}

    def clear_deferred(self, job_id: str) -> bool:
        """Forget the budget refusals: their documents are being sent again."""
        return self.redis.call(lambda c: c.delete(self._key(job_id, "deferred")) >= 0) is True

    def reset_counts(self, job_id: str) -> bool:
        """Drop a job's counts (before rebuilding them from the topics)."""
        parts = ("done", "failed", "deferred", "cancelled", "cached")

        def reset(client: Any) -> bool:
            pipe = client.pipeline(transaction=True)
            pipe.delete(*(self._key(job_id, p) for p in parts))
            pipe.hdel(self._key(job_id, "state"), "tokens", "first_output_ms", "last_output_ms")
            pipe.execute()
            return True

        return bool(self.redis.call(reset))

    def require(self, value: Any, what: str = "the job store") -> Any:
        """`value`, or a JobError when it is None because Redis did not answer."""
        if value is None and self.redis.degraded:
            raise JobError(f"Redis does not answer, so {what} cannot be read; is it up?")
        return value


def _int(value: str | None) -> int | None:
    return None if value in (None, "") else int(value)


class JobAdmission:
    """The scorer's admission rule for job requests: a cancelled job's documents and those of
    a job that spent its budget are refused (dead-lettered `job-cancelled` /
    `budget-exceeded`), everything else is admitted.

    One Redis round trip per call for the distinct jobs of the batch, with a short local cache
    so that a steady stream of one job's batches costs one read every `cache_s`.
    """

    def __init__(self, redis: DegradingRedis, namespace: str = "", cache_s: float = 0.5) -> None:
        self.redis = redis
        self.prefix = f"inferstream:jobs:{namespace}:"
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, str | None]] = {}

    def refusals(self, job_ids: Sequence[str | None]) -> list[str | None] | None:
        """Per request, None (admit) or the reason it is refused; None when Redis is down."""
        now = time.monotonic()
        wanted = {j for j in job_ids if j}
        stale = [j for j in wanted if (hit := self._cache.get(j)) is None or hit[0] <= now]
        if stale:
            verdicts = self._read(stale)
            if verdicts is None:
                return None
            for job_id, verdict in zip(stale, verdicts, strict=True):
                self._cache[job_id] = (now + self.cache_s, verdict)
            if len(self._cache) > 10_000:  # jobs come and go: keep the cache small
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        return [self._cache[j][1] if j else None for j in job_ids]

    def _read(self, job_ids: list[str]) -> list[str | None] | None:
        def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hmget(f"{self.prefix}{job_id}:state", ("state", "tokens", "budget", "spt"))
            return pipe.execute()

        found = self.redis.call(read)
        if found is None:
            return None
        return [_verdict(*(None if v is None else v.decode() for v in row)) for row in found]


def _verdict(
    state: str | None, tokens: str | None, budget: str | None, spt: str | None
) -> str | None:
    if state == "cancelled":
        return REFUSED_CANCELLED
    if state == "budget_exceeded":
        return REFUSED_BUDGET
    # the tracker moves the job to budget_exceeded after the batch that crossed it; refusing
    # here already saves the documents of the batches in between
    spent = int(tokens or 0) * float(spt) if spt else 0.0
    if budget and state in ("in_progress", "finalizing") and spent >= float(budget):
        return REFUSED_BUDGET
    return None
