"""API keys: stored hashed in Redis, each mapped to a tenant, its streams and its limits.

A key is `isk_<43 url-safe characters>` (256 random bits), shown once by `inferstream gateway
keys add`; Redis keeps only its sha256 (a key this long needs no slow hash), under
`inferstream:gateway:<namespace>:key:<sha256>` as a hash of the tenant, the streams it may use
(`*`: all), requests per second and burst (0: unlimited), cost units per hour (0:
unlimited) and a load-shedding priority (0 is shed first). The key id shown by `keys list` is
the first 12 hex digits of the hash; the key itself is never logged, stored or printed again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from pipeline.gateway.exceptions import KeyStoreError
from pipeline.redis.client import DegradingRedis

KEY_PREFIX = "isk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def redis_prefix(namespace: str) -> str:
    """Every gateway key in Redis starts with this (namespaces never share keys or limits)."""
    return f"inferstream:gateway:{namespace}:"


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str
    streams: str  # comma list or "*"
    rps: float
    burst: int
    cost_per_hour: float
    revoked: bool
    created_at: int
    priority: int = 0

    def as_row(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "tenant": self.tenant,
            "streams": self.streams,
            "rps": self.rps,
            "burst": self.burst,
            "cost_per_hour": self.cost_per_hour,
            "revoked": self.revoked,
            "priority": self.priority,
        }


class KeyStore:
    """Add, list and revoke keys (the CLI's side; the gateway reads them in limits.py)."""

    def __init__(self, redis: DegradingRedis, namespace: str) -> None:
        self.client = redis.client
        self.prefix = redis_prefix(namespace)

    def _call(self, operation):
        try:
            return operation(self.client)
        except Exception as exc:  # redis-py's ConnectionError, TimeoutError, ...
            raise KeyStoreError(f"the key store (Redis) is unavailable: {exc}") from None

    def add(
        self,
        tenant: str,
        streams: str = "*",
        rps: float = 0.0,
        burst: int = 0,
        cost_per_hour: float = 0.0,
        priority: int = 0,
    ) -> tuple[str, KeyInfo]:
        """A new key (returned once, in clear) and what it stores."""
        if not tenant or "," in tenant:
            raise KeyStoreError(f"tenant {tenant!r} must be a non-empty name without commas")
        if rps < 0 or burst < 0 or cost_per_hour < 0 or priority < 0:
            raise KeyStoreError("--rps, --burst, --cost-per-hour and --priority must be >= 0")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)
        burst = burst or (max(1, round(rps)) if rps else 0)
        fields = {
            "tenant": tenant,
            "streams": streams or "*",
            "rps": repr(float(rps)),
            "burst": str(int(burst)),
            "cost_per_hour": repr(float(cost_per_hour)),
            "revoked": "0",
            "priority": str(int(priority)),
            "created_at": str(int(time.time())),
        }

        def add(client):
            pipe = client.pipeline()
            pipe.hset(self.prefix + "key:" + digest, mapping=fields)
            pipe.sadd(self.prefix + "keys", digest)
            pipe.execute()

        self._call(add)
        return key, _info(digest, fields)

    def list(self) -> list[KeyInfo]:
        def read(client):
            digests = sorted(d.decode() for d in client.smembers(self.prefix + "keys"))
            pipe = client.pipeline()
            for digest in digests:
                pipe.hgetall(self.prefix + "key:" + digest)
            return list(zip(digests, pipe.execute(), strict=True))

        rows = []
        for digest, raw in self._call(read):
            if raw:
                rows.append(_info(digest, {k.decode(): v.decode() for k, v in raw.items()}))
        return sorted(rows, key=lambda k: (k.tenant, k.created_at))

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke the key whose id (a prefix of its hash, 6+ hex digits) is `key_id`."""
        if len(key_id) < 6:
            raise KeyStoreError(f"key id {key_id!r} is too short (give 6+ hex digits)")
        matches = [k for k in self.list() if k.key_id.startswith(key_id[:12])]
        matches = [k for k in matches if key_id.startswith(k.key_id[: len(key_id)])]
        if len(matches) != 1:
            what = "no key" if not matches else f"{len(matches)} keys"
            raise KeyStoreError(f"{what} with id {key_id!r}; see `inferstream gateway keys list`")
        found = matches[0]

        def revoke(client):
            for digest in client.smembers(self.prefix + "keys"):
                if digest.decode().startswith(found.key_id):
                    client.hset(self.prefix + "key:" + digest.decode(), "revoked", "1")

        self._call(revoke)
        return KeyInfo(**{**found.__dict__, "revoked": True})


def _info(digest: str, fields: dict[str, str]) -> KeyInfo:
    return KeyInfo(
        key_id=digest[:12],
        tenant=fields.get("tenant", ""),
        streams=fields.get("streams", "*"),
        rps=float(fields.get("rps", 0)),
        burst=int(fields.get("burst", 0)),
        cost_per_hour=float(fields.get("cost_per_hour", 0)),
        revoked=fields.get("revoked") == "1",
        created_at=int(fields.get("created_at", 0)),
        priority=int(fields.get("priority", 0)),
    )
