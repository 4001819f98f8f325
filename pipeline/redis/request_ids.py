"""The request-id rule: one id, one request.

A request id seen again with the same payload is a replay (a producer retry, a re-driven
dead letter, at-least-once redelivery) and is scored again, idempotently. The same id with a
different payload is a different request reusing an id: it is dead-lettered with reason
`duplicate-request-id` instead of being served under an id that already answers something else.

Ids are remembered in Redis for `window_s` (SET NX with a TTL, one Lua call per batch), so the
rule holds within that window; memory is about 100 bytes x request rate x window. Redis down:
the rule is not applied (the batch is scored and flagged degraded, like the cache).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pipeline.redis.client import DegradingRedis

# Per id: claim it for this fingerprint, or compare with the fingerprint that holds it. Ids
# and fingerprints travel as one string and the answer is one string of 0/1 flags: packing
# 2 x 256 arguments and parsing 256 replies cost the worker ~10 us of Python per request.
# (The keys are built inside the script, so this assumes a standalone Redis, not a cluster.)
_CLAIM = r"""
local prefix, ttl = ARGV[1], ARGV[2]
local flags = {}
for id, fp in string.gmatch(ARGV[3], "([^\n]*)\n([^\n]*)\n") do
  local key = prefix .. id
  if redis.call('SET', key, fp, 'NX', 'EX', ttl) or redis.call('GET', key) == fp then
    flags[#flags + 1] = '0'
  else
    flags[#flags + 1] = '1'
  end
end
return table.concat(flags)
"""


def fingerprint(payload: bytes | None) -> str:
    return hashlib.blake2b(payload or b"", digest_size=16).hexdigest()


class RequestIdRegistry:
    def __init__(self, redis: DegradingRedis, namespace: str, window_s: int = 600) -> None:
        if window_s < 1:
            raise ValueError(f"the request-id window must be at least 1 s, got {window_s}")
        self.redis = redis
        self.window_s = window_s
        self._prefix = f"inferstream:reqid:{namespace}:"
        self._claim = redis.client.register_script(_CLAIM)

    def conflicts(
        self, request_ids: Sequence[str], payloads: Sequence[bytes | None]
    ) -> list[bool] | None:
        """Per request, True when its id is held by a different payload; None: Redis down."""
        if not request_ids:
            return []
        for request_id in request_ids:
            if "\n" in request_id:  # cannot travel in the packed argument; never ours to hold
                raise ValueError(f"request_id {request_id!r} contains a newline")
        packed = "".join(
            f"{request_id}\n{fingerprint(payload)}\n"
            for request_id, payload in zip(request_ids, payloads, strict=True)
        )
        args = [self._prefix, self.window_s, packed]
        flags = self.redis.call(lambda client: self._claim(keys=[], args=args, client=client))
        if flags is None:
            return None
        return [flag == 49 for flag in flags]  # b"1"
