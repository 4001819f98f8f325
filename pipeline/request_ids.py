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

from pipeline.redis_client import DegradingRedis

# per key: claim it for this fingerprint, or compare with the fingerprint that holds it
_CLAIM = """
local ttl = ARGV[#ARGV]
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i], 'NX', 'EX', ttl) then
    out[i] = 1
  elseif redis.call('GET', key) == ARGV[i] then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
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
        keys = [self._prefix + i for i in request_ids]
        args = [fingerprint(p) for p in payloads] + [self.window_s]
        claimed = self.redis.call(lambda client: self._claim(keys=keys, args=args, client=client))
        if claimed is None:
            return None
        return [not ok for ok in claimed]
