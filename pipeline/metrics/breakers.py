"""Breaker states as Prometheus series, read from the breakers at scrape time
(pipeline/core/breaker.py): the gateway's per dependency, a worker's per model version."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.metrics.families import name


class BreakerCollector(Collector):
    """`inferstream_<family>_open{labels}` (1 open, 0.5 half-open, 0 closed) and its
    transitions, from the breakers at scrape time: the gateway's per dependency, a worker's per
    stream and model version. A breaker-like object has `.state` (closed / open / half-open)
    and `.transitions` (a Counter of "from->to"); `breakers()` maps label values to them."""

    def __init__(
        self,
        breakers: Callable[[], Mapping[Any, Any]],
        family: str = "gateway_breaker",
        labels: tuple[str, ...] = ("dependency",),
        whose: str = "the gateway's breaker for the dependency",
    ) -> None:
        self.breakers, self.family, self.labels, self.whose = breakers, family, labels, whose

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        state = GaugeMetricFamily(
            name(f"{self.family}_open"),
            f"1 while {self.whose} is open, 0.5 half-open, 0 closed",
            labels=self.labels,
        )
        moves = CounterMetricFamily(
            name(f"{self.family}_transitions"),
            f"State changes of {self.whose}",
            labels=(*self.labels, "from", "to"),
        )
        for key, breaker in self.breakers().items():
            values = list(key) if isinstance(key, tuple) else [key]
            value = {"open": 1.0, "half-open": 0.5}.get(breaker.state, 0.0)
            state.add_metric(values, value)
            for move, count in dict(breaker.transitions).items():
                before, _, after = move.partition("->")
                moves.add_metric([*values, before, after], float(count))
        yield from (state, moves)
