"""The instruments: what the engine, the scoring handler and the scrape feed into the families.

The core calls these through tiny hooks (an optional `observer` attribute), always per batch:

* `EngineObserver.batch_cut(batch, arrivals)` on the consumer thread, when a batch is cut:
  counters and the batch size, and the batch's arrival times kept for its delivery;
* `EngineObserver.batch_delivered(batch)` on the last stage's thread, once its outputs are
  delivered: the event-age phases of every event, binned with numpy in one pass per phase;
* `ScoringObserver.batch_scored(prepared, scored, inference_ms)` on the encode stage thread:
  outcomes, dead-letter reasons, cache hits, degraded, model time and cost.

Consumer lag, drift state and health are read when /metrics is scraped (collectors below), so
nothing runs for them between scrapes.

Cost: the scorer meters each batch once (pipeline/scoring/provenance.py RequestCosts: model
CPU- or GPU-seconds x price, shared by its freshly scored requests) and writes every request's
share into its provenance record; the counters here add up those same numbers (the batch's
total, and per tenant the shares of its requests), so provenance and metrics agree. Tenants:
the first `top_tenants` distinct tenants seen keep their own label (a counter's label cannot
move later), every other one counts as `other`.
"""

from __future__ import annotations

import collections
import operator
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.metrics.families import HELP, Families, name

_TIMESTAMP = operator.attrgetter("timestamp_ms")
DEAD_LETTER_REASON = "dlq.reason"  # pipeline/scoring/dead_letters.py HEADER_PREFIX + reason


class EngineObserver:
    """The engine's hook: one per engine, `stream` is its label."""

    def __init__(
        self, families: Families, stream: str, engine: Any = None, lag_every_s: float = 1.0
    ) -> None:
        self.stream = stream
        self.engine = engine
        self.lag_every_s = lag_every_s
        # (topic, partition) -> (records behind, seconds since last caught up); see LagCollector
        self.lags: dict[tuple[str, int], tuple[int, float]] = {}
        self._caught_up: dict[tuple[str, int], float] = {}
        self._lag_at = 0.0
        f = families
        self._age = f.event_age
        self._size = f.batch_size
        self._consumed = f.consumed.labels(stream)
        self._cuts = {c: f.batches.labels(stream, c) for c in ("full", "deadline", "idle")}
        self._batches = f.batches
        self._pending: dict[int, list[tuple[int, float]]] = {}
        self._phase_labels = {p: (stream, p) for p in ("broker", "batch", "inference")}
        self._phase_labels["publish"] = (stream, "publish")
        self._phase_labels["total"] = (stream, "total")
        self._array_phases = [self._phase_labels[p] for p in ("broker", "batch", "total")]

    def loop(self, engine: Any, consumer: Any) -> None:
        """Consumer thread, every loop turn: the lag snapshot, about once per `lag_every_s`."""
        now = time.monotonic()
        if now - self._lag_at < self.lag_every_s:
            return
        self._lag_at = now
        self.engine = engine
        try:
            records = partition_lags(engine, consumer)
        except Exception:  # mid-rebalance or closing: keep the last snapshot
            return
        lags = {}
        for tp, behind in records.items():
            if behind <= 0:
                self._caught_up[tp] = now
                lags[tp] = (behind, 0.0)
            else:
                lags[tp] = (behind, now - self._caught_up.setdefault(tp, now))
        self.lags = lags

    def batch_cut(self, batch: Any, arrivals: list[tuple[int, float]]) -> None:
        """Consumer thread: `arrivals` are (events, monotonic arrival) chunks, in order."""
        n = len(batch.messages)
        self._pending[batch.seq] = arrivals
        cut = self._cuts.get(batch.cut)
        if cut is None:
            cut = self._cuts[batch.cut] = self._batches.labels(self.stream, str(batch.cut))
        cut.inc()
        self._consumed.inc(n)
        self._size.observe((self.stream,), float(n))

    def batch_delivered(self, batch: Any) -> None:
        """Last stage's thread, after delivery: every event's age, phase by phase."""
        arrivals = self._pending.pop(batch.seq, None)
        messages = batch.messages
        n = len(messages)
        if not n:
            return
        now_mono, now_wall = time.monotonic(), time.time()
        to_wall = now_wall - now_mono
        # map + attrgetter: half the instructions of a generator expression per event
        stamps = np.fromiter(map(_TIMESTAMP, messages), np.float64, n) / 1000.0
        if arrivals:
            counts = np.fromiter((c for c, _ in arrivals), np.int64, len(arrivals))
            ats = np.fromiter((a for _, a in arrivals), np.float64, len(arrivals))
            arrived = np.repeat(ats, counts)
            if len(arrived) != n:  # a revoke dropped some: pad with the oldest arrival
                arrived = np.resize(arrived, n) if len(arrived) else np.full(n, batch.cut_at)
        else:
            arrived = np.full(n, batch.cut_at)
        publish_s = next(reversed(batch.stage_s.values()), 0.0) if batch.stage_s else 0.0
        handed_off = now_mono - publish_s  # when the last stage (delivery) started
        age, labels = self._age, self._phase_labels
        rows = np.empty((3, n))
        np.subtract(arrived + to_wall, stamps, out=rows[0])  # broker
        np.subtract(batch.cut_at, arrived, out=rows[1])  # batch
        np.subtract(now_wall, stamps, out=rows[2])  # total
        np.maximum(rows, 0.0, out=rows)
        age.observe_rows(self._array_phases, rows)
        # the same value for every event of the batch: one bucket, n events
        age.observe(labels["inference"], max(handed_off - batch.cut_at, 0.0), n)
        age.observe(labels["publish"], publish_s, n)


class ScoringObserver:
    """The scoring handler's hook: outcomes, model time and cost of each batch."""

    def __init__(
        self,
        families: Families,
        stream: str,
        *,
        tenant_field: str | None = "tenant",
        top_tenants: int = 10,
    ) -> None:
        self.stream = stream
        self.f = families
        self.tenant_field = tenant_field
        self.top_tenants = top_tenants
        self._scored = families.events.labels(stream, "scored")
        self._dead = families.events.labels(stream, "dead_lettered")
        self._hits = families.cache_hits.labels(stream)
        self._degraded = families.degraded.labels(stream)
        self._tenants: set[str] = set()
        self._tenant_children: dict[str, tuple[Any, Any]] = {}
        self._model_children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def batch_scored(self, prepared: Any, scored: Any, inference_ms: float, model: Any) -> None:
        stream = self.stream
        if scored.scored:
            self._scored.inc(scored.scored)
        if scored.dead_lettered:
            self._dead.inc(scored.dead_lettered)
            reasons = collections.Counter(
                _reason(m.headers) for m in scored.outbound[: scored.dead_lettered]
            )
            for reason, count in reasons.items():
                self.f.dead_letters.labels(stream, reason).inc(count)
        if scored.cache_hits:
            self._hits.inc(scored.cache_hits)
        if scored.degraded:
            self._degraded.inc(scored.degraded)
        if not scored.scored:
            return
        cost = getattr(scored, "cost", None)
        if self.tenant_field:  # every scored event, cache hits too (they cost 0)
            self._per_tenant(scored, cost)
        if not getattr(prepared, "model_calls", 0):
            return
        manifest = model.manifest
        provider = str(getattr(model, "provider", ""))
        labels = (stream, manifest.name, manifest.version, provider)
        self.f.model_inference.observe(labels, inference_ms / 1000.0)
        if cost is not None and cost.total_units:
            child = self._model_children.get(labels)
            if child is None:
                child = self._model_children[labels] = self.f.cost.labels(*labels)
            child.inc(cost.total_units)

    def _per_tenant(self, scored: Any, cost: Any) -> None:
        """Events and cost units per tenant label, from the scored requests' own shares (the
        provenance records' rows). collections.Counter counts in C; a per-row cost (cache hits,
        tiers) is summed with one bincount. np.unique over strings cost 45-95 us a batch."""
        tenants = getattr(scored, "tenants", None) or []
        if not tenants:
            return
        events = collections.Counter(tenants)
        units: dict[Any, float] = {}
        if cost is not None and cost.total_units:
            if cost.units is None:  # every row paid the same
                each = cost.constants.get("metered_cost_units", 0.0)
                units = {tenant: count * each for tenant, count in events.items()}
            else:
                slot = {tenant: i for i, tenant in enumerate(events)}
                index = np.fromiter(map(slot.__getitem__, tenants), np.intp, len(tenants))
                sums = np.bincount(index, weights=cost.units, minlength=len(slot)).tolist()
                units = dict(zip(slot, sums, strict=True))
        by_label: collections.Counter[str] = collections.Counter()
        cost_by_label: collections.Counter[str] = collections.Counter()
        with self._lock:
            for tenant, count in events.items():
                label = self._label(tenant)
                by_label[label] += count
                cost_by_label[label] += units.get(tenant, 0.0)
        for label, count in by_label.items():
            child = self._tenant_children.get(label)
            if child is None:
                child = self._tenant_children[label] = (
                    self.f.tenant_events.labels(self.stream, label),
                    self.f.tenant_cost.labels(self.stream, label),
                )
            child[0].inc(count)
            if cost_by_label[label]:
                child[1].inc(cost_by_label[label])

    def _label(self, tenant: Any) -> str:
        tenant = "" if tenant is None else str(tenant)
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) < self.top_tenants and tenant not in ("", "other"):
            self._tenants.add(tenant)
            return tenant
        return "other"


def _reason(headers: Iterable[tuple[str, bytes]]) -> str:
    for key, value in headers:
        if key == DEAD_LETTER_REASON:
            return value.decode(errors="replace")
    return "unknown"


class LagCollector(Collector):
    """Consumer lag per assigned partition, from the snapshots each engine's observer takes on
    its consumer thread (`EngineObserver.loop`, about once a second; confluent-kafka
    serializes a consumer's calls, so another thread calling it would wait on the poll loop).

    lag = the partition's high watermark (as of the last fetch response, no broker call)
    minus the offset the engine last committed (its fetch position before the first commit).
    lag seconds: 0 when caught up; otherwise the time since the partition was last seen
    caught up (an upper bound on the oldest unconsumed record's age, to a sample interval).
    """

    def __init__(self, observers: dict[str, EngineObserver], stale_error_s: float = 30.0):
        self.observers = observers
        self.stale_error_s = stale_error_s

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # unchecked: the label sets depend on the assignment

    def collect(self) -> Iterable[GaugeMetricFamily]:
        lag = GaugeMetricFamily(name("consumer_lag"), HELP["consumer_lag"], labels=_LAG_LABELS)
        age = GaugeMetricFamily(
            name("consumer_lag_seconds"), HELP["consumer_lag_seconds"], labels=_LAG_LABELS
        )
        up = GaugeMetricFamily(name("kafka_up"), HELP["kafka_up"], labels=("stream",))
        paused = GaugeMetricFamily(
            name("engine_paused"), "1 while the engine's partitions are paused", labels=("stream",)
        )
        now = time.monotonic()
        for stream, observer in self.observers.items():
            engine = observer.engine
            errors = dict(getattr(engine, "_error_logged", {}))
            recent = any(now - t < self.stale_error_s for t in errors.values())
            up.add_metric([stream], 0.0 if recent else 1.0)
            paused.add_metric([stream], 1.0 if getattr(engine, "_paused", False) else 0.0)
            for (topic, partition), (records, seconds) in observer.lags.items():
                labels = [stream, topic, str(partition)]
                lag.add_metric(labels, float(records))
                age.add_metric(labels, seconds)
        yield from (lag, age, up, paused)


_LAG_LABELS = ("stream", "topic", "partition")


def partition_lags(engine: Any, consumer: Any) -> dict[tuple[str, int], int]:
    """Records behind the end per assigned partition (see LagCollector); consumer thread only."""
    assignment = consumer.assignment()
    if not assignment:
        return {}
    positions = {(p.topic, p.partition): p.offset for p in consumer.position(assignment)}
    committed = dict(getattr(engine.tracker, "_committed", {}))
    out: dict[tuple[str, int], int] = {}
    for tp in assignment:
        key = (tp.topic, tp.partition)
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0:
            continue
        done = committed.get(key)
        if done is None:
            position = positions.get(key, -1)
            done = position if position >= 0 else low
        out[key] = max(0, high - done)
    return out


class DriftCollector(Collector):
    """Drift statistic, z, threshold and alert state per feature, recomputed at most every
    `every_s` (detector.stats() recomputes every window), under the handler's lock."""

    def __init__(self, handlers: dict[str, Any], every_s: float = 5.0) -> None:
        self.handlers = handlers
        self.every_s = every_s
        self._at = -1e9
        self._rows: list[tuple[list[str], Any, bool]] = []

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def _refresh(self) -> None:
        rows = []
        for stream, handler in self.handlers.items():
            monitor = getattr(handler, "monitor", None)
            if monitor is None:
                continue
            lock = getattr(handler, "_lock", None) or threading.Lock()
            with lock:
                stats = monitor.detector.stats()
                open_features = set(monitor.open_alerts)
            model = f"{monitor.model_name}:{monitor.model_version}"
            for s in stats:
                rows.append(([stream, model, s.feature], s, s.feature in open_features))
        self._rows = rows
        self._at = time.monotonic()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if time.monotonic() - self._at >= self.every_s:
            self._refresh()
        labels = ("stream", "model", "feature")
        fams = {
            k: GaugeMetricFamily(name(k), HELP[k], labels=labels)
            for k in ("drift_statistic", "drift_z", "drift_threshold", "drift_alert_open")
        }
        for values, s, is_open in self._rows:
            fams["drift_statistic"].add_metric(values, s.statistic)
            fams["drift_z"].add_metric(values, s.z)
            fams["drift_threshold"].add_metric(values, s.threshold)
            fams["drift_alert_open"].add_metric(values, 1.0 if is_open else 0.0)
        yield from fams.values()


class RedisCollector(Collector):
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(name("redis_up"), HELP["redis_up"])
        if self.redis is not None:
            family.add_metric([], 0.0 if getattr(self.redis, "degraded", False) else 1.0)
        yield family
