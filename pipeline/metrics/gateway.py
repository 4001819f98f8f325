"""The HTTP gateway's metrics: requests by route/status/tenant, submit latency, limit
refusals, cost reserved/refunded/settled, and its dependencies' breakers.

The same stack as the workers': these families go on the registry of the gateway process's
`ProcessMetrics` (role `gateway`: `info`, `ready`, `redis_up` and the process collectors come
with it), which serves `/metrics` on its own thread at INFERSTREAM_METRICS_BIND /
INFERSTREAM_METRICS_PORT (loopback, any free port by default - tenant names are not for the
gateway's public port) and lists it in the file_sd targets directory, so the stack's
Prometheus finds every gateway as it finds every worker.

Per request the gateway does a handful of counter increments and one histogram observation
(~1 us each): cheap next to its HTTP parsing. Breaker state is read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from pipeline.metrics.breakers import BreakerCollector
from pipeline.metrics.families import AGE_BUCKETS, name, new_registry
from pipeline.metrics.observer import RedisCollector

NO_TENANT = "none"  # requests refused before their tenant is known (no key, a wrong key)
OTHER = "other"


class GatewayMetrics:
    """The gateway process's registry and instruments (one per process)."""

    def __init__(self, registry: CollectorRegistry | None = None, top_tenants: int = 10) -> None:
        if registry is None:  # standalone (tests): a registry of its own
            registry, _ = new_registry()
        self.registry = registry
        self.top_tenants = top_tenants
        self._tenants: set[str] = set()
        self._children: dict[Any, Any] = {}
        self.requests = Counter(
            name("gateway_requests"),
            "HTTP requests the gateway answered, by route, status code and tenant (top N"
            " tenants by first use, the rest other; none: refused before the key was known)",
            ("route", "status", "tenant"),
            registry=registry,
        )
        self.submit_seconds = Histogram(
            name("gateway_submit_seconds"),
            "Submit latency in seconds: POST received to its answer (202, 200, or a refusal)",
            ("stream",),
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        self.limited = Counter(
            name("gateway_limited"),
            "Submissions refused by a limit: rate (requests/s), cost (budget per hour),"
            " shed (the backlog would miss the deadline)",
            ("tenant", "limit"),
            registry=registry,
        )
        self.cost = Counter(
            name("gateway_cost_units"),
            "Cost units by tenant and step: reserved at admission, refunded (dead letters,"
            " worker cache hits, never produced) and settled (served cost above the estimate)",
            ("tenant", "step"),
            registry=registry,
        )

    def tenant(self, tenant: str | None) -> str:
        """The tenant's label: its own for the first `top_tenants` seen, else `other`."""
        if not tenant:
            return NO_TENANT
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) < self.top_tenants and tenant not in (NO_TENANT, OTHER):
            self._tenants.add(tenant)
            return tenant
        return OTHER

    def answered(self, route: str, status: int, tenant: str | None) -> None:
        key = (route, status, self.tenant(tenant))
        child = self._children.get(key)
        if child is None:  # labels() costs a lock and a tuple per call: once per series
            child = self._children[key] = self.requests.labels(route, str(status), key[2])
        child.inc()

    def submitted(self, stream: str, seconds: float) -> None:
        child = self._children.get(stream)
        if child is None:
            child = self._children[stream] = self.submit_seconds.labels(stream)
        child.observe(seconds)

    def watch(self, redis: Any, breakers: Callable[[], Mapping[str, Any]]) -> None:
        """Scrape-time collectors: Redis's up gauge and every breaker's state."""
        self.registry.register(RedisCollector(redis))
        self.registry.register(BreakerCollector(breakers))
