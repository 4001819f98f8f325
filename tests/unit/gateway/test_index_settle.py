"""What the result index settles a reservation to: 0 for a worker cache hit or a dead
letter, the provenance's cost_units, the estimate when the cost is unknown; a settle that
Redis could not take is retried (the batch is not committed)."""

from __future__ import annotations

from typing import Any

from pipeline.gateway.index import ResultIndexer


class _Message:
    def __init__(self, topic: str, value: dict[str, Any]) -> None:
        self._topic, self._value = topic, value

    def topic(self) -> str:
        return self._topic

    def value(self) -> dict[str, Any]:
        return self._value


class _Limits:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.calls: list[list[tuple[str, float | None]]] = []

    def settle(self, served):
        self.calls.append(list(served))
        return [("acme", -1.5)] if self.up else None


def _indexer(limits: Any) -> ResultIndexer:
    indexer = ResultIndexer.__new__(ResultIndexer)  # no consumer: the pure part only
    indexer.limits = limits
    indexer.on_cost = None
    indexer._by_topic = {"p": ("fraud", "provenance", lambda value: value)}
    return indexer


def test_the_served_cost_comes_from_provenance():
    indexer = _indexer(_Limits())

    def cost(**record: Any) -> Any:
        return indexer._served_cost(_Message("p", {"request_id": "r1", **record}))

    assert cost(cache_hit=True, cost_units=2.3) == ("r1", 0.0)  # the worker's cache: free
    assert cost(cache_hit=False, cost_units=2.3) == ("r1", 2.3)
    assert cost(cache_hit=False, cost_units=0.0) == ("r1", None)  # unknown: estimate stands
    assert indexer._served_cost(_Message("p", {"request_id": ""})) is None


def test_settling_counts_refunds_and_says_when_redis_did_not_take_it():
    limits = _Limits()
    indexer = _indexer(limits)
    counted: list[tuple[str, str, float]] = []
    indexer.on_cost = lambda tenant, step, units: counted.append((tenant, step, units))
    assert indexer._settle([("r1", 0.0)]) is True
    assert counted == [("acme", "refunded", 1.5)]
    assert indexer._settle([]) is True and len(limits.calls) == 1  # nothing: no round trip
    down = _indexer(_Limits(up=False))
    assert down._settle([("r1", 0.0)]) is False  # the caller retries before committing
