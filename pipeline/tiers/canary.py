"""Canary: a sticky share of keys served by a candidate, paired with the stable version, and a
sequential gate that promotes or rolls back by itself.

- Share: a key is in the canary when `blake2b(key) mod 10000 < share_percent * 100`: the same
  key always lands on the same side (sticky), on every worker.
- Paired: the stable tiers score every row of a batch anyway; the candidate scores the canary
  rows in one more call. Each canary row is one paired observation: decision flip (candidate vs
  stable), |score delta|, and per batch the two calls' time per row and the candidate's errors.
- Gate (`GateRule`): nothing is decided before `min_sample` pairs. Then the flip rate's Wilson
  interval at `z` (3: about 99.7 %, wide enough for the repeated looks of a sequential test)
  decides: its lower bound above `max_flip_rate` (or errors above `max_error_rate`, or the p99
  of the candidate's call time per batch above `max_p99_ratio` x the stable tiers' p99 for the
  whole batch: its call has fewer rows, so this catches a much slower candidate; with fewer
  than 500 batches, a lower quantile with 5 batches above it, so one slow call decides
  nothing) rolls back;
  its upper bound below `max_flip_rate` with the mean |delta| under `max_mean_abs_delta` promotes;
  otherwise the verdict says how many more pairs the current rate needs ("need N more").
  The gate runs on a batch's pairs before that batch is served, so a candidate rolled back at
  the minimum sample has served fewer than `min_sample` requests.
- State (`CanaryStore`): gate counters, state (running, promoted, rolled-back) and the events,
  as JSON in Redis (DegradingRedis: Redis down keeps the in-memory state), read at start so a
  restart keeps a decision. Promoted: the candidate serves every row; rolled back: none.
- Events: each decision is also a TierEvent record on `<stream>.events` (pipeline/tiers/
  events.py), produced with the worker's next delivered batch; so is one "hold" when the gate
  has its minimum sample but cannot decide yet ("need N more pairs").
- Several workers on one canary: each keeps its own gate counters (its own share of the
  pairs) and saves the whole state under the same key, last writer wins. The first worker
  whose gate decides saves the decision; the others take a stored decision over within
  `recheck_s`, or at their next save (a running worker does not overwrite a stored decision
  with its running state: it takes the decision over instead). Until then another worker can
  still decide on its own pairs: its state is saved over the first one's and it publishes its
  own event (a GET-then-SET, not atomic: two decisions in the same instant both stand).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.redis.state import scan_keys

log = logging.getLogger("inferstream.tiers.canary")

RUNNING, PROMOTED, ROLLED_BACK = "running", "promoted", "rolled-back"
_BUCKETS = 10_000
_DELTA_EDGES = np.array([0, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0 + 1e-9])


def in_canary(keys: Sequence[Any], share_percent: float) -> np.ndarray:
    """Sticky per key: the same key is always on the same side."""
    cut = share_percent * (_BUCKETS / 100)
    out = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        raw = key if isinstance(key, bytes) else str(key).encode()
        bucket = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") % _BUCKETS
        out[i] = bucket < cut
    return out

_TAIL_BATCHES = 5  # batches above the latency quantile the gate compares


@dataclass(frozen=True)
class GateRule:
    min_sample: int = 400
    max_flip_rate: float = 0.03
    max_mean_abs_delta: float = 0.05
    max_error_rate: float = 0.01
    max_p99_ratio: float = 3.0
    z: float = 3.0

    @classmethod
    def from_policy(cls, gate: Mapping[str, Any]) -> GateRule:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in gate.items() if k in known})


@dataclass(frozen=True)
class Verdict:
    decision: str  # "promote", "rollback" or "continue"
    reason: str
    need_more: int = 0


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class CanaryGate:
    rule: GateRule = field(default_factory=GateRule)
    pairs: int = 0
    flips: int = 0
    abs_delta_sum: float = 0.0
    delta_histogram: list[int] = field(default_factory=lambda: [0] * (len(_DELTA_EDGES) - 1))
    errors: int = 0
    attempts: int = 0  # canary rows the candidate was asked to score
    # per batch (last 500): the candidate's call on the canary rows, the stable tiers' calls on
    # the whole batch
    candidate_ms: list[float] = field(default_factory=list)
    stable_ms: list[float] = field(default_factory=list)

    def observe(
        self, flips: np.ndarray, abs_delta: np.ndarray, candidate_ms: float, stable_ms: float
    ) -> None:
        n = len(flips)
        self.pairs += n
        self.attempts += n
        self.flips += int(np.count_nonzero(flips))
        self.abs_delta_sum += float(np.sum(abs_delta))
        hist, _ = np.histogram(np.minimum(abs_delta, 1.0), _DELTA_EDGES)
        self.delta_histogram = [a + int(b) for a, b in zip(self.delta_histogram, hist, strict=True)]
        if n:
            self.candidate_ms = [*self.candidate_ms[-499:], candidate_ms]
            self.stable_ms = [*self.stable_ms[-499:], stable_ms]

    def failed(self, rows: int) -> None:
        self.errors += rows
        self.attempts += rows

    def verdict(self) -> Verdict:
        r = self.rule
        n = self.pairs
        if (
            self.attempts
            and self.errors / self.attempts > r.max_error_rate
            and (
                self.attempts >= r.min_sample or self.errors >= r.min_sample * r.max_error_rate + 1
            )
        ):
            return Verdict("rollback", f"error rate {self.errors}/{self.attempts} above "
                                       f"{r.max_error_rate:g}")  # fmt: skip
        if n < r.min_sample:
            return Verdict("continue", f"{n} of the minimum {r.min_sample} pairs",
                           r.min_sample - n)  # fmt: skip
        low, high = wilson(self.flips, n, r.z)
        rate = self.flips / n
        p99_ratio = self.p99_ratio()
        if low > r.max_flip_rate:
            return Verdict(
                "rollback",
                f"decision flip rate {rate:.4f} (>= {low:.4f} at z="
                f"{r.z:g}) above {r.max_flip_rate:g} over {n} pairs",
            )
        if p99_ratio > r.max_p99_ratio:
            return Verdict("rollback", f"p99 model time per batch {p99_ratio:.2f}x the stable "
                                       f"version's, above {r.max_p99_ratio:g}x")  # fmt: skip
        mean_delta = self.abs_delta_sum / n
        if high < r.max_flip_rate:
            if mean_delta > r.max_mean_abs_delta:
                return Verdict("rollback", f"mean |score delta| {mean_delta:.4f} above "
                                           f"{r.max_mean_abs_delta:g}")  # fmt: skip
            return Verdict("promote", f"decision flip rate {rate:.4f} (<= {high:.4f} at z="
                                      f"{r.z:g}) below {r.max_flip_rate:g} over {n} pairs, "
                                      f"mean |delta| {mean_delta:.4f}")  # fmt: skip
        gap = abs(rate - r.max_flip_rate)
        needed = math.ceil(r.z * r.z * max(rate * (1 - rate), 1e-6) / (gap * gap)) if gap else 10**9
        more = max(needed - n, 1)
        return Verdict(
            "continue",
            f"flip rate {rate:.4f} in [{low:.4f}, {high:.4f}] around "
            f"{r.max_flip_rate:g}: need {more} more pairs",
            more,
        )

    def p99_ratio(self) -> float:
        """Candidate / stable call time per batch at the p99, or at the highest quantile the
        sample supports with `_TAIL_BATCHES` batches above it (p90 of 50 batches): the p99 of a
        few dozen batches is their maximum, so one preempted call would roll back a good
        candidate, while a candidate slower on every batch is slower at any quantile."""
        n = min(len(self.candidate_ms), len(self.stable_ms))
        if not n:
            return 0.0
        q = max(0.5, min(0.99, 1.0 - _TAIL_BATCHES / n))
        stable = float(np.quantile(self.stable_ms, q))
        return float(np.quantile(self.candidate_ms, q)) / max(stable, 1e-9)

    def summary(self) -> dict[str, Any]:
        n = max(self.pairs, 1)
        low, high = wilson(self.flips, self.pairs, self.rule.z)
        return {
            "pairs": self.pairs,
            "flips": self.flips,
            "flip_rate": round(self.flips / n, 6),
            "flip_rate_interval": [round(low, 6), round(high, 6)],
            "mean_abs_delta": round(self.abs_delta_sum / n, 6),
            "delta_histogram": dict(
                zip([f"<{e:g}" for e in _DELTA_EDGES[1:]], self.delta_histogram, strict=True)
            ),
            "errors": self.errors,
            "p99_ratio": round(self.p99_ratio(), 3),
        }


@dataclass
class CanaryState:
    stable: str
    candidate: str
    share_percent: float
    state: str = RUNNING
    served_by_candidate: int = 0
    held: bool = False  # the gate reached its minimum sample undecided (one "hold" event)
    gate: CanaryGate = field(default_factory=CanaryGate)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        data["gate"]["rule"] = asdict(self.gate.rule)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes, rule: GateRule) -> CanaryState:
        data = json.loads(text)
        gate_data = data.pop("gate")
        gate_data.pop("rule", None)
        return cls(**data, gate=CanaryGate(rule, **gate_data))


class CanaryStore:
    """Canary state as JSON under `<prefix><stream>:<stable>-><candidate>` in Redis."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix

    def key(self, stream: str, stable: str, candidate: str) -> str:
        return f"{self.prefix}{stream}:{stable}->{candidate}"

    def load(self, stream: str, stable: str, candidate: str, rule: GateRule) -> CanaryState | None:
        blob = self.redis.call(lambda c: c.get(self.key(stream, stable, candidate)))
        return CanaryState.from_json(blob, rule) if blob else None

    def save(self, stream: str, state: CanaryState) -> bool:
        key = self.key(stream, state.stable, state.candidate)
        return bool(self.redis.call(lambda c: c.set(key, state.to_json())))

    def all(self, stream: str) -> list[dict[str, Any]]:
        keys = self.redis.call(lambda c: scan_keys(c, f"{self.prefix}{stream}:*")) or []
        out = []
        for key in sorted(keys):
            blob = self.redis.call(lambda c, k=key: c.get(k))
            if blob:
                out.append(json.loads(blob))
        return out


class Canary:
    """The canary of one stream under the current policy: decides per batch, keeps state."""

    def __init__(
        self,
        stream: str,
        store: CanaryStore | None = None,
        recheck_s: float = 2.0,
        events: Any = None,  # pipeline.tiers.events.TierEvents: decisions to <stream>.events
    ) -> None:
        self.stream, self.store, self.recheck_s = stream, store, recheck_s
        self.events = events
        self.state: CanaryState | None = None
        self._checked = time.monotonic()

    def current(
        self, stable: str, candidate: str, share: float, gate: Mapping[str, Any]
    ) -> CanaryState:
        rule = GateRule.from_policy(gate)
        s = self.state
        if s is None or (s.stable, s.candidate) != (stable, candidate):
            loaded = self.store.load(self.stream, stable, candidate, rule) if self.store else None
            s = loaded or CanaryState(stable, candidate, share, gate=CanaryGate(rule))
            s.share_percent = share
            self.state = s
        elif s.state == RUNNING and self.store is not None:
            now = time.monotonic()
            if now - self._checked >= self.recheck_s:  # a decision made elsewhere (the CLI,
                self._checked = now  # another worker) is taken over
                stored = self.store.load(self.stream, stable, candidate, rule)
                if stored is not None and stored.state != RUNNING:
                    self.state = s = stored
        return s

    def decide(self, state: CanaryState, verdict: Verdict) -> None:
        if verdict.decision == "continue":
            # told once: the minimum sample is there but the gate cannot tell yet (why a canary
            # on low traffic looks stuck); the reason says how many more pairs it needs
            if not state.held and state.gate.pairs >= state.gate.rule.min_sample:
                state.held = True
                self.event(state, "hold", verdict.reason, automatic=True)
            return
        state.state = PROMOTED if verdict.decision == "promote" else ROLLED_BACK
        self.event(state, verdict.decision, verdict.reason, automatic=True)

    def event(self, state: CanaryState, kind: str, reason: str, automatic: bool) -> None:
        event = {
            "event": kind, "stream": self.stream, "stable": state.stable,
            "candidate": state.candidate, "reason": reason, "automatic": automatic,
            "at_ms": time.time_ns() // 1_000_000, "served_by_candidate": state.served_by_candidate,
            **state.gate.summary(),
        }  # fmt: skip
        state.events.append(event)
        log.warning("canary %s: %s", kind, json.dumps(event))
        if self.events is not None:
            self.events.add(event, state.share_percent)

    def save(self) -> None:
        state = self.state
        if self.store is None or state is None:
            return
        if state.state == RUNNING:  # a decision stored by another worker wins over "running"
            stored = self.store.load(self.stream, state.stable, state.candidate, state.gate.rule)
            if stored is not None and stored.state != RUNNING:
                self.state = stored
                return
        self.store.save(self.stream, state)


def set_by_hand(store: CanaryStore, stream: str, stable: str, candidate: str, share: float,
                decision: str, reason: str, events: Any = None) -> CanaryState:  # fmt: skip
    """`inferstream models canary promote|rollback`: the state and an event, in Redis (and
    handed to `events`, a TierEvents, for the caller to publish)."""
    canary = Canary(stream, store, events=events)
    state = canary.current(stable, candidate, share, {})
    state.state = PROMOTED if decision == "promote" else ROLLED_BACK
    canary.event(state, decision, reason, automatic=False)
    if not store.save(stream, state):
        raise ConnectionError("cannot reach Redis to record the canary decision")
    return state
