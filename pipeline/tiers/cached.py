"""The result cache under a routing policy: a repeat is served from the cache only when it would
get the same model's answer.

A cached row is keyed by its data hash and by the *scope* that decides which model answers it:

- one version serves (no policy, `primary` only, a promoted candidate, a rolled-back canary
  without cascade): the scope is that version, `<version>:<data_hash>`, and the value the
  version's output row: the key and value the scorer uses without tiers (and the gateway reads);
- a cascade: `cascade:<small>+<large>:<bands>:<data_hash>`, and the value the served output row
  plus one flag (1.0: escalated, the large model's row; 0.0: the small model's). The small score
  of an input decides its escalation, so the same small, large and bands give the same answer;
- a running canary: its rows are never cached (each one is a paired observation the gate needs,
  and which version serves it depends on the gate's next verdict); the other rows take the
  stable scope. A canary whose state this worker does not know yet caches nothing.

The keys are computed when the scorer looks the batch up (prepare stage) and again when it is
routed (infer stage): a hit is used only when both are the same, so a policy reload or a canary
decision in between turns it into a miss. A fresh row is stored only when the version and route
that served it are those its key's scope names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CASCADE_SCOPE = "cascade:"
_PRIMARY, _SMALL, _LARGE = "primary", "cascade-small", "cascade-large"  # cascade.py's routes
_PROMOTED, _RUNNING = "promoted", "running"  # canary.py's states


def stable_scope(router: Any, policy: Any) -> str:
    """The scope of rows the stable tiers serve."""
    if policy is None:
        return str(router.base.version)
    if policy.cascade is not None:
        c = policy.cascade
        bands = ",".join(f"{lo!r}-{hi!r}" for lo, hi in c.bands)
        return f"{CASCADE_SCOPE}{c.small}+{c.large}:{bands}"
    return str(policy.primary)


def scopes(router: Any, policy: Any, keys: Sequence[Any] | None, n: int) -> list[str | None]:
    """Per row: the scope deciding its answer, or None (not cacheable)."""
    stable = stable_scope(router, policy)
    if policy is None or policy.canary is None or router.canary is None or keys is None:
        return [stable] * n
    from pipeline.tiers.canary import in_canary

    c = policy.canary
    state = router.canary.state
    if state is None or (state.stable, state.candidate) != (policy.primary, c.version):
        return [None] * n
    if state.state == _PROMOTED:
        return [c.version] * n
    if state.state == _RUNNING:
        return [None if inside else stable for inside in in_canary(keys, c.share_percent)]
    return [stable] * n


def cache_keys(
    router: Any, policy: Any, hashes: Sequence[str], keys: Sequence[Any] | None
) -> list[str | None]:
    return [
        None if scope is None else f"{scope}:{h}"
        for scope, h in zip(scopes(router, policy, keys, len(hashes)), hashes, strict=True)
    ]


def lookup(
    cache: Any, router: Any, hashes: Sequence[str], keys: Sequence[Any] | None
) -> tuple[list[str | None], list[np.ndarray | None] | None]:
    """(the keys looked up, the rows found, None where missing or not cacheable); rows None
    when the cache is unavailable."""
    looked_up = cache_keys(router, router.policy, hashes, keys)
    asked = [i for i, key in enumerate(looked_up) if key is not None]
    if not asked:
        return looked_up, [None] * len(hashes)
    found = cache.get_many([looked_up[i] for i in asked])
    if found is None:
        return looked_up, None
    rows: list[np.ndarray | None] = [None] * len(hashes)
    for i, row in zip(asked, found, strict=True):
        rows[i] = row
    return looked_up, rows


def route_with_cache(
    router: Any,
    policy: Any,
    matrix: np.ndarray,
    keys: Sequence[Any] | None,
    hashes: Sequence[str],
    cached: Sequence[np.ndarray | None],
    looked_up: Sequence[str | None],
) -> Any:
    """`router`'s Routed for the batch: the valid hits from the cache, the rest routed."""
    from pipeline.tiers.cascade import Routed

    n = len(matrix)
    row_scopes = scopes(router, policy, keys, n)
    now = [None if s is None else f"{s}:{h}" for s, h in zip(row_scopes, hashes, strict=True)]
    parts: list[tuple[np.ndarray, Routed]] = []
    used: list[np.ndarray | None] = [None] * n
    groups: dict[tuple[str, int], list[int]] = {}
    if cached and looked_up:
        for i in range(n):
            row, key = cached[i], now[i]
            if row is None or key is None or key != looked_up[i]:
                continue
            tag = _tag(router, policy, row_scopes[i], row)
            if tag is not None:
                groups.setdefault((str(row_scopes[i]), tag), []).append(i)
    for (scope, tag), rows in groups.items():
        index = np.asarray(rows, dtype=np.int64)
        outputs = np.stack([_untagged(scope, cached[i]) for i in rows])  # type: ignore[arg-type]
        parts.append((index, _hit(router, policy, scope, tag, outputs)))
        for i in rows:
            used[i] = cached[i]
    miss = np.asarray([row is None for row in used], dtype=bool)
    if miss.any():
        index = np.flatnonzero(miss)
        sub_keys = None if keys is None else [keys[i] for i in index.tolist()]
        fresh = router._route(policy, matrix if miss.all() else matrix[index], sub_keys)
        fresh.put_keys = _storable(fresh, [now[i] for i in index.tolist()], row_scopes, index)
        parts.append((index, fresh))
    routed = parts[0][1] if len(parts) == 1 else combine(n, parts)
    routed.cached_rows = used
    return routed


def _tag(router: Any, policy: Any, scope: str | None, row: np.ndarray) -> int | None:
    """0 (one version or the small model), 1 (escalated), or None for a row that does not fit."""
    width = router.base.model.output_width
    if scope is not None and scope.startswith(CASCADE_SCOPE):
        if len(row) != width + 1 or row[-1] not in (0.0, 1.0):
            return None
        return int(row[-1])
    return 0 if len(row) == width else None


def _untagged(scope: str, row: np.ndarray) -> np.ndarray:
    return row[:-1] if scope.startswith(CASCADE_SCOPE) else row


def _hit(router: Any, policy: Any, scope: str, tag: int, outputs: np.ndarray) -> Any:
    """A uniform Routed for cached rows of one scope and tag (no model call)."""
    from pipeline.tiers.cascade import Routed

    digest = policy.digest if policy is not None else ""
    if scope.startswith(CASCADE_SCOPE):
        small = router.tier(policy.cascade.small)
        large = router.tier(policy.cascade.large)
        tier = large if tag else small
        units = small.units + large.units if tag else small.units
        route, escalated = (_LARGE, True) if tag else (_SMALL, False)
    else:
        tier = router.tier(scope) if scope != router.base.version else router.base
        units, route, escalated = tier.units, _PRIMARY, False
    return Routed(
        outputs, dict(tier.head(outputs)), tier.version, tier.model.sha256, route, escalated,
        units, 0, digest, len(outputs) if escalated else 0,
    )  # fmt: skip


def _storable(
    fresh: Any, keys: list[str | None], row_scopes: list[str | None], index: np.ndarray
) -> list[str | None]:
    """The keys of fresh rows served as their scope says (a canary decision taken over while
    routing could have served them otherwise); None for the others."""
    k = len(keys)
    version, route = _column(fresh.version, k), _column(fresh.route, k)
    out: list[str | None] = []
    for j, key in enumerate(keys):
        scope = row_scopes[int(index[j])]
        if key is None or scope is None:
            out.append(None)
        elif scope.startswith(CASCADE_SCOPE):
            out.append(key if route[j] in (_SMALL, _LARGE) else None)
        else:
            out.append(key if route[j] == _PRIMARY and version[j] == scope else None)
    return out


def _column(value: Any, n: int) -> list[Any]:
    return list(value) if isinstance(value, list | np.ndarray) else [value] * n


def entries(routed: Any) -> list[tuple[list[str], np.ndarray]]:
    """(keys, value rows) to store for a routed batch: cascade rows carry their escalated flag."""
    put = routed.put_keys
    if not put:
        return []
    n = len(routed.outputs)
    escalated = _column(routed.escalated, n)
    plain: list[int] = []
    tagged: list[int] = []
    for i, key in enumerate(put):
        if key is not None:
            (tagged if key.startswith(CASCADE_SCOPE) else plain).append(i)
    out = []
    if plain:
        out.append(([put[i] for i in plain], routed.outputs[plain]))  # type: ignore[misc]
    if tagged:
        flags = np.asarray([1.0 if escalated[i] else 0.0 for i in tagged])[:, None]
        out.append(([put[i] for i in tagged], np.hstack([routed.outputs[tagged], flags])))  # type: ignore[misc]
    return out


def combine(n: int, parts: Sequence[tuple[np.ndarray, Any]]) -> Any:
    """One Routed of `n` rows from parts covering disjoint row indexes."""
    from pipeline.tiers.cascade import Routed

    order = np.concatenate([index for index, _ in parts])
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)  # row r is the concatenation's row position[r]
    sizes = [len(index) for index, _ in parts]
    pick = position.tolist()

    def merged(values: list[Any], collapse: bool = False) -> Any:
        if all(isinstance(v, np.ndarray) for v in values):
            return np.concatenate(values)[position]
        flat = [x for v, size in zip(values, sizes, strict=True) for x in _column(v, size)]
        column = [flat[i] for i in pick]
        if collapse and all(x == column[0] for x in column):
            return column[0]
        return column

    routes = [r for _, r in parts]
    fields = {name: merged([r.fields[name] for r in routes]) for name in routes[0].fields}
    cost = np.concatenate(
        [np.broadcast_to(np.asarray(r.cost_units, dtype=np.float64), (size,))
         for r, size in zip(routes, sizes, strict=True)]
    )[position]  # fmt: skip
    put = [r.put_keys or [None] * size for r, size in zip(routes, sizes, strict=True)]
    return Routed(
        np.concatenate([r.outputs for r in routes])[position], fields,
        merged([r.version for r in routes], True), merged([r.sha256 for r in routes], True),
        merged([r.route for r in routes], True), merged([r.escalated for r in routes], True),
        cost, sum(r.model_calls for r in routes), routes[0].policy,
        sum(r.escalated_rows for r in routes), put_keys=merged(put),
        degraded=merged([r.degraded for r in routes], True),
    )  # fmt: skip
