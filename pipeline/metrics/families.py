"""Every metric family of inferstream, named and explained once, in base units.

One registry per process (`REGISTRY`); the engine, the scoring handler, the drift handler and
the lag collector all write into it, `/metrics` (http.py) reads it. Histograms of per-event
values are `BatchHistogram`s: a batch's values are binned with numpy in one call, so the cost
is per batch, not per event (prometheus_client's `Histogram.observe` is ~1 us per value).

Labels are bounded: stream, phase, cut, outcome, reason (dead-letter reasons are a fixed set
in the code), model, version, provider, topic/partition (the assignment), feature (the model's
features) and tenant (the top N by volume, the rest `other`; see observer.py).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

PREFIX = "inferstream"

# 1 ms .. 10 s, about 3 buckets per decade (plus the +Inf bucket)
AGE_BUCKETS: tuple[float, ...] = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
MODEL_BUCKETS: tuple[float, ...] = (
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip

# phases of an event's age, in order; `total` is record timestamp -> outputs delivered
PHASES: tuple[str, ...] = ("broker", "batch", "inference", "publish", "total")

HELP = {
    "event_age_seconds": (
        "Age of events in seconds by phase: broker (record timestamp to the engine receiving"
        " it), batch (received to batch cut), inference (cut to outputs handed to the"
        " publisher: decode, model, encode), publish (outputs delivered, acks=all), total"
        " (record timestamp to delivery)"
    ),
    "batch_size": "Events per micro-batch the engine cut",
    "batches_total": "Micro-batches cut, by the batcher's cut reason",
    "events_consumed_total": "Events the engine handed to its handler",
    "events_total": "Events handled, by outcome (scored, dead_lettered)",
    "dead_letters_total": "Events dead-lettered, by reason",
    "cache_hits_total": "Scored events served from the result cache",
    "degraded_total": "Scored events flagged degraded (Redis unavailable)",
    "model_inference_seconds": "Model time per batch (all model calls of one batch), in seconds",
    "cost_units_total": (
        "Cost units: model CPU- or GPU-seconds x the price per second (the manifest's, else"
        " the configured one); the sum of the provenance records' metered_cost_units"
    ),
    "tenant_cost_units_total": "Cost units per tenant (top N tenants by volume, the rest other)",
    "tenant_events_total": "Scored events per tenant (top N tenants by volume, the rest other)",
    "consumer_lag": "Records behind the partition's end (high watermark - committed offset)",
    "consumer_lag_seconds": (
        "Age of the oldest unconsumed record of the partition in seconds (0 when caught up;"
        " an upper bound: time since the partition was last caught up)"
    ),
    "drift_statistic": "Drift effect size per feature (KS D or Jensen-Shannon distance)",
    "drift_z": "Drift evidence per feature (z of the best full window)",
    "drift_threshold": "Alarm threshold on drift z per feature",
    "drift_alert_open": "1 while a drift alert is open for the feature",
    "ready": "1 once every engine of the process has its first partition assignment",
    "redis_up": "1 while the process's Redis client is not degraded",
    "kafka_up": "1 while the engine's consumer has reported no broker error in the last 30 s",
    "info": "Build and model information",
    "worker_restarts_total": (
        "Worker child processes the `--processes N` supervisor restarted after they exited,"
        " by child slot (served by the supervisor: a child's own counters restart with it)"
    ),
}


def name(short: str) -> str:
    return f"{PREFIX}_{short}"


class BatchHistogram(Collector):
    """A labelled histogram fed a numpy array of values at a time (one batch)."""

    def __init__(self, short: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name = name(short)
        self.help = HELP[short]
        self.labels = tuple(labels)
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self._bounds = [float(b) for b in buckets]
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], list] = {}  # labels -> [counts, sum]

    def observe_many(self, labels: tuple[str, ...], values: np.ndarray) -> None:
        if len(values):
            self.observe_rows([labels], values.reshape(1, -1))

    def observe_rows(self, labels: Sequence[tuple[str, ...]], rows: np.ndarray) -> None:
        """Row i of `rows` (one value per event) into series `labels[i]`: one binning call."""
        k, width = len(labels), len(self.bounds) + 1
        # bucket i counts values <= bounds[i]; the last slot is above every bound (+Inf)
        index = np.searchsorted(self.bounds, rows, side="left")
        index += (np.arange(k) * width)[:, None]
        counts = np.bincount(index.ravel(), minlength=k * width).reshape(k, width)
        totals = rows.sum(axis=1).tolist()
        with self._lock:
            for i, key in enumerate(labels):
                series = self._series.get(key)
                if series is None:
                    self._series[key] = [counts[i].astype(np.int64), totals[i]]
                else:
                    series[0] += counts[i]
                    series[1] += totals[i]

    def observe(self, labels: tuple[str, ...], value: float, count: int = 1) -> None:
        """`count` events (or one batch) with the same `value`: no array, no numpy call."""
        i = bisect.bisect_left(self._bounds, value)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [np.zeros(len(self._bounds) + 1, np.int64), 0.0]
            series[0][i] += count
            series[1] += value * count

    def snapshot(self, labels: tuple[str, ...]) -> tuple[np.ndarray, float] | None:
        with self._lock:
            series = self._series.get(labels)
            return None if series is None else (series[0].copy(), series[1])

    def describe(self) -> Iterable[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.help, labels=self.labels)

    def collect(self) -> Iterable[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.help, labels=self.labels)
        with self._lock:
            items = [(k, v[0].copy(), v[1]) for k, v in self._series.items()]
        for labels, counts, total in items:
            cumulative = np.cumsum(counts)
            pairs = zip(self.bounds, cumulative[:-1], strict=True)
            buckets = [(_bound(b), float(c)) for b, c in pairs]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric(list(labels), buckets, total)
        yield family


def _bound(b: float) -> str:
    return repr(float(b))


class Families:
    """The metric families, registered once on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(short: str, labels: Sequence[str]) -> Counter:
            # prometheus_client appends `_total` to a counter's name itself
            return Counter(
                name(short.removesuffix("_total")), HELP[short], labels, registry=registry
            )

        def gauge(short: str, labels: Sequence[str]) -> Gauge:
            return Gauge(name(short), HELP[short], labels, registry=registry)

        self.event_age = BatchHistogram("event_age_seconds", ("stream", "phase"), AGE_BUCKETS)
        self.batch_size = BatchHistogram("batch_size", ("stream",), BATCH_SIZE_BUCKETS)
        self.model_inference = BatchHistogram(
            "model_inference_seconds", ("stream", "model", "version", "provider"), MODEL_BUCKETS
        )
        for h in (self.event_age, self.batch_size, self.model_inference):
            registry.register(h)
        self.batches = counter("batches_total", ("stream", "cut"))
        self.consumed = counter("events_consumed_total", ("stream",))
        self.events = counter("events_total", ("stream", "outcome"))
        self.dead_letters = counter("dead_letters_total", ("stream", "reason"))
        self.cache_hits = counter("cache_hits_total", ("stream",))
        self.degraded = counter("degraded_total", ("stream",))
        self.cost = counter("cost_units_total", ("stream", "model", "version", "provider"))
        self.tenant_cost = counter("tenant_cost_units_total", ("stream", "tenant"))
        self.tenant_events = counter("tenant_events_total", ("stream", "tenant"))
        self.ready = gauge("ready", ("role",))
        self.info = gauge("info", ("version", "role", "streams"))


def new_registry() -> tuple[CollectorRegistry, Families]:
    """A registry with the process and platform collectors and every family."""
    from prometheus_client import PlatformCollector, ProcessCollector, disable_created_metrics

    disable_created_metrics()  # no `_created` series per counter: half the series, same rates
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_start_time_seconds
    PlatformCollector(registry=registry)
    return registry, Families(registry)
