"""Which model scores which row of a batch, under the stream's routing policy.

`TierRouter.route(matrix)` is what `BatchScorer.infer` calls instead of the one model call when
a policy is configured:

- no policy, or a policy with only `primary`: one call to that version, route `primary`;
- `cascade`: the small model scores every row (call 1); rows whose small score lies in a band
  go to the large model together (call 2, only when there are any): two calls per batch at
  most, never one per event. A row's decision is the head of the model that served it.

Every row gets the served version, its sha256, its route (`primary`, `cascade-small`,
`cascade-large`) and its cost in units (a cascade-large row pays for both models), which the
scorer writes into provenance (and the version into the result).

Model calls keep the serving path's timeout, bounded retries and per-version breaker (the
scoring handler's `ModelCaller`, pipeline/scoring/model_calls.py). The policy's fallback version
(`fallback`, default the cascade's small model) stands in for the others:

- a batch whose serving call failed for good, or was refused by an open breaker, is served by
  the fallback in one call (route `fallback-breaker`); without a fallback, or when the fallback
  is what failed, the `ModelFailed` goes up and the batch is dead-lettered;
- rows marked `degrade` (requests of a tenant over its cost budget, header DEGRADE_HEADER set by
  the gateway) are served by the fallback in one call of their own (route `fallback-budget`);
  if that call fails they are served like the others.

Both are flagged `degraded` per row, cost the fallback's units, and are never cached.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.models.exceptions import ModelFailed
from pipeline.tiers.costs import units_per_row
from pipeline.tiers.policy import PolicyWatcher, RoutingPolicy, escalated_mask

log = logging.getLogger("inferstream.tiers")

ROUTE_PRIMARY = "primary"
ROUTE_SMALL = "cascade-small"
ROUTE_LARGE = "cascade-large"
ROUTE_CANARY = "canary"
ROUTE_FALLBACK_BREAKER = "fallback-breaker"  # the serving call failed or its breaker is open
ROUTE_FALLBACK_BUDGET = "fallback-budget"  # the gateway marked the request: over its budget
PROMOTED, RUNNING = "promoted", "running"  # pipeline.tiers.canary's states


def _per_row(value: Any, n: int) -> list[Any]:
    return list(value) if isinstance(value, list | np.ndarray) else [value] * n


@dataclass
class Tier:
    """A loaded version with its output head and cost."""

    model: Any  # LoadedModel
    head: Callable[[np.ndarray], Mapping[str, Any]]
    units: float

    @property
    def version(self) -> str:
        return str(self.model.manifest.version)


@dataclass
class Routed:
    """What the router did with a batch: outputs and head fields per row, and per-row tiers."""

    outputs: np.ndarray
    fields: dict[str, Any]
    version: list[str] | str
    sha256: list[str] | str
    route: list[str] | str
    escalated: list[bool] | bool
    cost_units: np.ndarray | float
    model_calls: int
    policy: str = ""  # digest of the policy the batch ran under
    escalated_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # the result cache (pipeline/tiers/cached.py): per row the key to store it under (None:
    # not stored), and the cached rows that were served (None: scored now)
    put_keys: list[str | None] = field(default_factory=list)
    cached_rows: list[Any] = field(default_factory=list)
    degraded: list[bool] | bool = False  # served by the fallback (per row, or all of them)

    def tier_values(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(per-batch constants, per-row columns) for the encoders: uniform values stay
        constants, encoded once per batch."""
        constants: dict[str, Any] = {}
        columns: dict[str, Any] = {}
        for name, value in (
            ("model_version", self.version),
            ("model_sha256", self.sha256),
            ("route", self.route),
            ("escalated", self.escalated),
            ("cost_units", self.cost_units),
        ):
            if isinstance(value, list | np.ndarray):
                columns[name] = value
            else:
                constants[name] = value
        constants["routing_policy"] = self.policy
        return constants, columns

    def take(self, keep: np.ndarray) -> Routed:
        """The rows in boolean `keep` (requests dropped after scoring)."""
        index = np.flatnonzero(keep)

        def sub(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value[index]
            if isinstance(value, list):
                return [value[i] for i in index.tolist()]
            return value

        return Routed(
            self.outputs[index],
            {k: sub(v) for k, v in self.fields.items()},
            sub(self.version), sub(self.sha256), sub(self.route), sub(self.escalated),
            sub(self.cost_units), self.model_calls, self.policy,
            sum(sub(self.escalated)) if isinstance(self.escalated, list)
            else len(index) if self.escalated else 0,
            put_keys=sub(self.put_keys) if self.put_keys else [],
            cached_rows=sub(self.cached_rows) if self.cached_rows else [],
            degraded=sub(self.degraded),
        )  # fmt: skip


def merge_fields(
    base: Mapping[str, Any], other: Mapping[str, Any], rows: np.ndarray
) -> dict[str, Any]:
    """`base`'s columns with the rows in index `rows` replaced by `other`'s (in order); numpy
    columns are changed in place (the head made them for this batch)."""
    merged: dict[str, Any] = {}
    positions = rows.tolist()
    for name, column in base.items():
        replacement = other[name]
        if isinstance(column, np.ndarray):
            out = column
            out[rows] = replacement
        else:
            out = list(column)
            for i, value in zip(positions, replacement, strict=True):
                out[i] = value
        merged[name] = out
    return merged


class TierRouter:
    """Routes each batch under the watcher's current policy; loads the versions it names."""

    def __init__(
        self,
        base_model: Any,
        load: Callable[[str], Any],
        head: Callable[[Any], Callable[[np.ndarray], Mapping[str, Any]]],
        call: Callable[[Any, np.ndarray], np.ndarray],
        watcher_factory: Callable[[Callable[[RoutingPolicy | None], None]], PolicyWatcher]
        | None = None,
        canary: Any = None,  # pipeline.tiers.canary.Canary
    ) -> None:
        """`load(version)` a LoadedModel; `head(manifest)` the stream's output head;
        `call(model, matrix)` one model call; `watcher_factory(on_change)` the policy watcher
        (None: no policy, the base model serves)."""
        self._load, self._head, self.call = load, head, call
        self._tiers: dict[str, Tier] = {}
        self._lock = threading.Lock()
        self.base = self._tier_of(base_model)
        self.batches = 0
        self.rows = 0
        self.escalated = 0
        self.canary = canary
        self.watcher = watcher_factory(self._prepare) if watcher_factory else None

    def _tier_of(self, model: Any) -> Tier:
        version = str(model.manifest.version)
        tier = self._tiers.get(version)
        if tier is None:
            tier = Tier(model, self._head(model.manifest), units_per_row(model.manifest))
            self._tiers[version] = tier
        return tier

    def tier(self, version: str) -> Tier:
        with self._lock:
            tier = self._tiers.get(version)
            if tier is None:
                tier = self._tier_of(self._load(version))
            return tier

    def _prepare(self, policy: RoutingPolicy | None) -> None:
        """Load (and so verify) every version a new policy names before it is accepted."""
        if policy is None:
            return
        for version in policy.versions:
            self.tier(version)
        if policy.cascade:
            for version in (policy.cascade.small, policy.cascade.large):
                probe = self.tier(version).head(np.zeros((1, self.base.model.output_width)))
                if "score" not in probe:
                    raise ValueError(
                        f"version {version}: the stream's head gives no 'score' to cascade on"
                    )

    @property
    def policy(self) -> RoutingPolicy | None:
        return self.watcher.current() if self.watcher else None

    def route(
        self,
        matrix: np.ndarray,
        keys: Sequence[Any] | None = None,
        hashes: Sequence[str] | None = None,
        cached: Sequence[np.ndarray | None] = (),
        looked_up: Sequence[str | None] = (),
        degrade: np.ndarray | None = None,
    ) -> Routed:
        """Outputs and tiers of a batch's rows; `keys` (the requests' keys) place rows in or
        out of a canary. With `hashes` (the rows' data hashes) the result cache takes part:
        `cached` and `looked_up` are what `cache_lookup` found, and the Routed says which rows
        to store (pipeline/tiers/cached.py). Rows in boolean `degrade` go to the fallback."""
        policy = self.policy
        fallback = self.fallback(policy)
        if fallback is None or degrade is None or not degrade.any():
            return self._served(policy, fallback, matrix, keys, hashes, cached, looked_up)
        cheap = np.flatnonzero(degrade)
        try:
            low = self._on_fallback(policy, fallback, matrix[cheap], ROUTE_FALLBACK_BUDGET)
        except ModelFailed as failed:  # no cheaper answer now: served like the others
            log.warning("fallback %s failed for degraded rows: %s", fallback.version,
                        failed.detail)  # fmt: skip
            return self._served(policy, fallback, matrix, keys, hashes, cached, looked_up)
        if len(cheap) == len(matrix):
            return low
        rest = np.flatnonzero(~degrade)
        positions = rest.tolist()

        def sub(values: Sequence[Any] | None) -> Any:
            return None if values is None else [values[i] for i in positions] if values else []

        main = self._served(
            policy, fallback, matrix[rest], sub(keys), sub(hashes), sub(cached), sub(looked_up)
        )
        from pipeline.tiers.cached import combine

        routed = combine(len(matrix), [(rest, main), (cheap, low)])
        if main.cached_rows:
            rows: list[Any] = [None] * len(matrix)
            for i, row in zip(positions, main.cached_rows, strict=True):
                rows[i] = row
            routed.cached_rows = rows
        return routed

    def fallback(self, policy: RoutingPolicy | None) -> Tier | None:
        version = policy.fallback_version if policy is not None else None
        return self.tier(version) if version else None

    def _served(
        self,
        policy: RoutingPolicy | None,
        fallback: Tier | None,
        matrix: np.ndarray,
        keys: Sequence[Any] | None,
        hashes: Sequence[str] | None,
        cached: Sequence[np.ndarray | None],
        looked_up: Sequence[str | None],
    ) -> Routed:
        """The policy's routing of the rows; the fallback's if a serving call fails."""
        from pipeline.tiers.cached import route_with_cache

        try:
            if hashes is None:
                return self._route(policy, matrix, keys)
            return route_with_cache(self, policy, matrix, keys, hashes, cached, looked_up)
        except ModelFailed as failed:
            if fallback is None or failed.version == fallback.version:
                raise
            try:
                return self._on_fallback(policy, fallback, matrix, ROUTE_FALLBACK_BREAKER)
            except ModelFailed:
                raise failed from None

    def _on_fallback(
        self, policy: RoutingPolicy | None, tier: Tier, matrix: np.ndarray, route: str
    ) -> Routed:
        outputs = self.call(tier.model, matrix)
        return Routed(
            outputs, dict(tier.head(outputs)), tier.version, tier.model.sha256, route, False,
            tier.units, 1, policy.digest if policy else "", degraded=True,
        )  # fmt: skip

    def cache_lookup(
        self, cache: Any, hashes: Sequence[str], keys: Sequence[Any] | None
    ) -> tuple[list[str | None], list[np.ndarray | None] | None]:
        """(keys looked up, rows found or None per row; None: cache unavailable) under the
        current policy: the scorer's prepare stage calls it, `route` checks the keys again."""
        from pipeline.tiers.cached import lookup

        return lookup(cache, self, hashes, keys)

    def _route(
        self, policy: RoutingPolicy | None, matrix: np.ndarray, keys: Sequence[Any] | None
    ) -> Routed:
        self.batches += 1
        self.rows += len(matrix)
        canary = None
        if policy is not None and policy.canary and self.canary is not None and keys is not None:
            c = policy.canary
            canary = self.canary.current(policy.primary, c.version, c.share_percent, c.gate)
            if canary.state == PROMOTED:  # the candidate serves every row
                tier = self.tier(c.version)
                outputs = self.call(tier.model, matrix)
                return Routed(
                    outputs, dict(tier.head(outputs)), tier.version, tier.model.sha256,
                    ROUTE_PRIMARY, False, tier.units, 1, policy.digest,
                )  # fmt: skip
        started = time.perf_counter()
        if policy is None or policy.cascade is None:
            tier = self.base if policy is None else self.tier(policy.primary)
            outputs = self.call(tier.model, matrix)
            routed = Routed(
                outputs, dict(tier.head(outputs)), tier.version, tier.model.sha256,
                ROUTE_PRIMARY, False, tier.units, 1, policy.digest if policy else "",
            )  # fmt: skip
        else:
            routed = self._cascade(policy, matrix)
        if canary is None or canary.state != RUNNING or not len(matrix):
            return routed
        stable_ms = (time.perf_counter() - started) * 1000
        assert policy is not None and keys is not None
        return self._canary(policy, canary, matrix, keys, routed, stable_ms)

    def _canary(
        self, policy: RoutingPolicy, state: Any, matrix: np.ndarray, keys: Sequence[Any],
        routed: Routed, stable_ms: float,
    ) -> Routed:  # fmt: skip
        """Score the batch's canary rows with the candidate too, let the gate look at the
        pairs, and serve the candidate's outputs on them unless the gate just rolled back."""
        from pipeline.tiers.canary import ROLLED_BACK, in_canary

        assert policy.canary is not None and self.canary is not None
        rows = np.flatnonzero(in_canary(keys, policy.canary.share_percent))
        if not len(rows):
            return routed
        candidate = self.tier(policy.canary.version)
        started = time.perf_counter()
        try:
            out = self.call(candidate.model, matrix[rows])
        except Exception as exc:  # the candidate's failure is the gate's business, not serving's
            log.warning("canary %s failed on %d rows: %r", candidate.version, len(rows), exc)
            state.gate.failed(len(rows))
            self.canary.decide(state, state.gate.verdict())
            self.canary.save()
            return routed
        took_ms = (time.perf_counter() - started) * 1000
        fields = candidate.head(out)
        stable_score = np.asarray(routed.fields["score"], dtype=np.float64)[rows]
        stable_decision = np.asarray(routed.fields.get("decision", [""] * len(matrix)),
                                     dtype=object)[rows]  # fmt: skip
        flips = np.asarray(fields.get("decision", [""] * len(rows)), dtype=object) != (
            stable_decision
        )
        delta = np.abs(np.asarray(fields["score"], dtype=np.float64) - stable_score)
        state.gate.observe(flips, delta, took_ms, stable_ms)
        self.canary.decide(state, state.gate.verdict())
        if state.state == ROLLED_BACK:
            self.canary.save()
            return routed  # this batch is served by the stable version already
        state.served_by_candidate += len(rows)
        self.canary.save()
        n = len(matrix)
        routed.outputs[rows] = out
        merged = merge_fields(routed.fields, fields, rows)
        version, sha, route = (
            _per_row(routed.version, n),
            _per_row(routed.sha256, n),
            _per_row(routed.route, n),
        )
        escalated = _per_row(routed.escalated, n)
        cost = np.asarray(routed.cost_units, dtype=np.float64) * np.ones(n)
        for i in rows.tolist():
            version[i], sha[i], route[i] = candidate.version, candidate.model.sha256, ROUTE_CANARY
            escalated[i] = False
            cost[i] += candidate.units
        return Routed(
            routed.outputs, merged, version, sha, route, escalated, cost,
            routed.model_calls + 1, routed.policy, routed.escalated_rows,
        )  # fmt: skip

    def _cascade(self, policy: RoutingPolicy, matrix: np.ndarray) -> Routed:
        assert policy.cascade is not None
        small, large = self.tier(policy.cascade.small), self.tier(policy.cascade.large)
        outputs = self.call(small.model, matrix)
        fields = dict(small.head(outputs))
        up = escalated_mask(fields["score"], policy.cascade.bands)
        rows = np.flatnonzero(up)
        n, k = len(matrix), len(rows)
        calls = 1
        if k:
            large_out = self.call(large.model, matrix[rows])
            calls = 2
            outputs[rows] = large_out  # predict's rows are this call's own array
            fields = merge_fields(fields, large.head(large_out), rows)
        self.escalated += k
        if k == 0:
            version: list[str] | str = small.version
            sha: list[str] | str = small.model.sha256
            route: list[str] | str = ROUTE_SMALL
        elif k == n:
            version, sha, route = large.version, large.model.sha256, ROUTE_LARGE
        else:
            flags = up.tolist()
            version = [large.version if e else small.version for e in flags]
            sha = [large.model.sha256 if e else small.model.sha256 for e in flags]
            route = [ROUTE_LARGE if e else ROUTE_SMALL for e in flags]
        cost = np.where(up, small.units + large.units, small.units)
        escalated: list[bool] | bool = up.tolist() if 0 < k < n else k == n
        return Routed(
            outputs, fields, version, sha, route, escalated, cost, calls, policy.digest, k,
        )  # fmt: skip

    def close(self) -> None:
        close = getattr(self.call, "close", None)
        if close is not None:
            close()


def tier_defaults(model: Any) -> dict[str, Any]:
    """The provenance tier fields of a batch served without a router."""
    return {
        "route": ROUTE_PRIMARY,
        "escalated": False,
        "cost_units": units_per_row(model.manifest, getattr(model, "directory", None)),
        "routing_policy": "",
    }


def share_in_bands(scores: Sequence[float], bands: Sequence[tuple[float, float]]) -> float:
    values = np.asarray(scores, dtype=np.float64)
    return float(escalated_mask(values, bands).mean()) if len(values) else 0.0
