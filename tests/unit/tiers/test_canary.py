"""The canary through the router: a sticky key share, paired scoring, the gate rolling back a
bad candidate before it served `min_sample` requests and promoting a good one, and the decision
kept across a restart (state in Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.streams.fraud.features import build_features
from pipeline.streams.fraud.generator import TransactionGenerator
from pipeline.tiers.canary import (
    PROMOTED,
    ROLLED_BACK,
    Canary,
    CanaryGate,
    CanaryStore,
    GateRule,
    in_canary,
    wilson,
)  # fmt: skip

from .conftest import CANDIDATE, LARGE

BAD = "1.0.0-bad.1"


class FakeRedis:
    """DegradingRedis's interface over a dict."""

    def __init__(self):
        self.data = {}
        self.client = self

    def call(self, operation):
        return operation(self)

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        self.data[key] = value.encode() if isinstance(value, str) else value
        return True

    def scan_iter(self, match, count):
        prefix = match.rstrip("*")
        return iter([k for k in self.data if k.startswith(prefix)])


def traffic(n, seed=8):
    records = TransactionGenerator(seed=seed).generate(n).records
    return build_features(records).matrix, [r["card_id"] for r in records]


def test_the_share_is_sticky_per_key_and_about_the_asked_share():
    keys = [f"card-{i}" for i in range(20_000)]
    first = in_canary(keys, 10)
    assert (first == in_canary(keys, 10)).all()
    assert 0.09 < first.mean() < 0.11
    assert not in_canary(keys, 0).any() and in_canary(keys, 100).all()
    assert (in_canary(keys, 5) <= first).all(), "a smaller share is a subset"


def test_the_gate_waits_for_the_minimum_then_says_how_many_more():
    gate = CanaryGate(GateRule(min_sample=400, max_flip_rate=0.03))
    gate.observe(np.zeros(100, bool), np.zeros(100), 1.0, 1.0)
    v = gate.verdict()
    assert (v.decision, v.need_more) == ("continue", 300)
    flips = np.zeros(300, bool)
    flips[:6] = True  # 1.5 %: too few pairs to tell from 3 %
    gate.observe(flips, np.zeros(300), 1.0, 1.0)
    v = gate.verdict()
    assert v.decision == "continue" and v.need_more > 0 and "need" in v.reason
    low, high = wilson(6, 400, 3.0)
    assert low < 0.03 < high


def run_canary(tiers, candidate, redis, batches=24, share=10):
    router_for, _ = tiers
    router = router_for({"primary": LARGE,
                         "canary": {"version": candidate, "share_percent": share}})  # fmt: skip
    router.canary = Canary("fraud", CanaryStore(redis, "inferstream:canary:"))
    x, keys = traffic(256 * batches)
    routes = []
    for i in range(batches):
        rows = slice(256 * i, 256 * (i + 1))
        routed = router.route(x[rows], keys[rows])
        routes += routed.route if isinstance(routed.route, list) else [routed.route] * 256
    return router, routes, keys


def test_a_bad_candidate_is_rolled_back_before_it_served_the_minimum_sample(tiers):
    redis = FakeRedis()
    router, routes, _ = run_canary(tiers, BAD, redis)
    state = router.canary.state
    assert state.state == ROLLED_BACK
    (event,) = state.events
    assert event["event"] == "rollback" and event["automatic"]
    assert "flip rate" in event["reason"]
    rule = state.gate.rule
    assert rule.min_sample <= state.gate.pairs < rule.min_sample + 256
    assert routes.count("canary") == state.served_by_candidate < rule.min_sample
    # after the rollback nothing more goes to the candidate
    last = routes[-256:]
    assert "canary" not in last

    # a restarted worker reads the decision back from Redis
    again, routes2, _ = run_canary(tiers, BAD, redis, batches=2)
    assert again.canary.state.state == ROLLED_BACK
    assert "canary" not in routes2


def test_a_good_candidate_is_promoted_and_then_serves_everything(tiers):
    redis = FakeRedis()
    router, _routes, _ = run_canary(tiers, CANDIDATE, redis, batches=60)
    state = router.canary.state
    assert state.state == PROMOTED, state.gate.verdict()
    assert state.events[-1]["event"] == "promote"
    assert state.gate.flips / state.gate.pairs < state.gate.rule.max_flip_rate
    stored = CanaryStore(redis, "inferstream:canary:").all("fraud")
    assert stored[0]["state"] == PROMOTED
    x, keys = traffic(256, seed=9)
    routed = router.route(x, keys)
    assert routed.version == CANDIDATE and routed.route == "primary"


def test_each_decision_is_one_event_delivered_with_the_next_batch(tiers):
    from pipeline.codec import AvroDeserializer, AvroSerializer, SchemaCatalog
    from pipeline.codec.registry import LocalRegistry
    from pipeline.config import REPO_ROOT
    from pipeline.core.messages import OutboundMessage
    from pipeline.tiers.events import TierEvents

    registry = LocalRegistry(SchemaCatalog(REPO_ROOT / "schemas"))
    schema = registry.catalog.latest("tier_event")
    events = TierEvents(AvroSerializer(registry, schema, "fraud.events"), "fraud.events", "w-1")
    router_for, _ = tiers
    router = router_for({"primary": LARGE, "canary": {"version": BAD, "share_percent": 10}})
    router.canary = Canary("fraud", CanaryStore(FakeRedis(), "c:"), events=events)
    delivered: list[list[OutboundMessage]] = []
    deliver = events.with_events(lambda batch: delivered.append(list(batch)))
    x, keys = traffic(256 * 24)
    served = OutboundMessage("fraud.results", b"k", b"v", [])
    for i in range(24):
        rows = slice(256 * i, 256 * (i + 1))
        router.route(x[rows], keys[rows])
        deliver([served])
    assert router.canary.state.state == ROLLED_BACK
    sent = [m for batch in delivered for m in batch if m.topic == "fraud.events"]
    assert len(sent) == 1, "one rollback, one event"
    assert all(batch[0] is served for batch in delivered), "the batch's own outputs first"
    event = AvroDeserializer(registry)(sent[0].value)
    gate = router.canary.state.gate
    assert (event["kind"], event["automatic"], event["worker"]) == ("rollback", True, "w-1")
    assert (event["stable"], event["candidate"], event["share_percent"]) == (LARGE, BAD, 10.0)
    assert (event["pairs"], event["flips"]) == (gate.pairs, gate.flips)
    assert event["served_by_candidate"] == router.canary.state.served_by_candidate
    assert "flip rate" in event["reason"]


def test_a_failed_delivery_keeps_the_events_for_the_retry():
    from pipeline.tiers.events import TierEvents

    events = TierEvents(lambda record: record["kind"].encode(), "s.events", "w")
    events.add({"event": "promote", "stream": "s", "stable": "1", "candidate": "2",
                "reason": "r", "automatic": True}, 10.0)  # fmt: skip
    calls = []

    def failing(batch):
        calls.append(list(batch))
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        events.with_events(failing)([])
    assert [m.value for m in calls[0]] == [b"promote"]
    retried = []
    events.with_events(retried.extend)([])
    assert [m.value for m in retried] == [b"promote"] and events.published == 1


def test_a_running_worker_takes_over_a_stored_decision_instead_of_overwriting_it():
    redis = FakeRedis()
    store = CanaryStore(redis, "c:")
    mine, theirs = Canary("fraud", store), Canary("fraud", store)
    state = mine.current(LARGE, CANDIDATE, 10, {})
    mine.save()
    decided = theirs.current(LARGE, CANDIDATE, 10, {})
    decided.state = ROLLED_BACK
    theirs.save()
    assert state.state == "running"
    mine.save()  # its in-memory state still says running
    assert store.load("fraud", LARGE, CANDIDATE, GateRule()).state == ROLLED_BACK
    assert mine.state.state == ROLLED_BACK


def test_an_undecided_gate_at_its_minimum_sample_says_hold_once():
    published = []

    class Sink:
        def add(self, event, share):
            published.append((event["event"], event["reason"]))

    canary = Canary("fraud", None, events=Sink())
    state = canary.current(LARGE, CANDIDATE, 10, {"min_sample": 400})
    flips = np.zeros(100, bool)
    flips[:3] = True  # 3 %: right at the limit, the interval cannot leave it
    for _ in range(8):
        state.gate.observe(flips, np.zeros(100), 1.0, 1.0)
        canary.decide(state, state.gate.verdict())
    assert state.state == "running" and state.held
    ((kind, reason),) = published
    assert kind == "hold" and "need" in reason and "more pairs" in reason
    assert [e["event"] for e in state.events] == ["hold"]


def _timed_gate(candidate_ms: list[float]) -> CanaryGate:
    gate = CanaryGate(GateRule(min_sample=100, max_flip_rate=0.03, max_p99_ratio=3.0))
    for ms in candidate_ms:
        gate.observe(np.zeros(10, bool), np.zeros(10), ms, 1.0)
    return gate


def test_one_slow_candidate_call_among_dozens_does_not_roll_back_a_good_candidate():
    gate = _timed_gate([0.5] * 49 + [40.0])  # one preempted call: the maximum of 50
    assert gate.verdict().decision == "promote", gate.verdict()


def test_a_candidate_slower_on_every_batch_is_rolled_back_for_its_latency():
    gate = _timed_gate([4.0] * 50)
    v = gate.verdict()
    assert v.decision == "rollback" and "p99 model time" in v.reason, v


def test_with_enough_batches_the_gate_compares_the_true_p99():
    # 500 batches: 2 % of the candidate's calls are 10x slow, so its p99 is, and the gate sees it
    gate = _timed_gate([10.0 if i % 50 == 0 else 0.5 for i in range(500)])
    assert gate.p99_ratio() > 3.0
