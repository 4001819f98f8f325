"""Shadow versions: score the served batches after delivery, off the serving path.

The scorer `attach`es a job to a batch's outbound list; the engine's deliver stage runs it once
every served output is acknowledged (assembly wraps the deliver callable), which only puts the
job on a bounded queue (`put_nowait`: a full queue drops the job and counts it, serving never
waits). One daemon thread takes jobs, runs each shadow version on the batch's feature rows and
publishes one ShadowResult per request to `<stream>.shadow`, the served output alongside. A
shadow version that raises or is slow costs only its own thread: the error is counted and
logged (once per version per minute) and the next job goes on.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.core.messages import OutboundMessage

log = logging.getLogger("inferstream.tiers.shadow")

QUEUE_BATCHES = 8  # jobs waiting for the shadow thread; more are dropped (and counted)


class _Outbound(list):  # type: ignore[type-arg]
    """A batch's outbound messages carrying the job to run once they are delivered."""

    after_delivery: Callable[[], None] | None = None


@dataclass
class ShadowStats:
    submitted: int = 0
    dropped: int = 0  # queue full
    scored_batches: int = 0
    scored_rows: int = 0
    failures: int = 0
    published: int = 0
    by_version: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class _Job:
    matrix: np.ndarray
    request_ids: list[str]
    keys: list[Any]
    served: dict[str, Any]  # per-row (or constant) served version, route, cost
    score: np.ndarray
    decision: list[Any]
    served_at: int
    inference_ms: float


def after_delivery(deliver: Callable[[Sequence[OutboundMessage]], None]) -> Callable[..., None]:
    """`deliver`, then the batch's after-delivery job (if the scorer attached one)."""

    def deliver_then_shadow(outbound: Sequence[OutboundMessage]) -> None:
        deliver(outbound)
        job = getattr(outbound, "after_delivery", None)
        if job is not None:
            job()

    return deliver_then_shadow


class ShadowScorer:
    def __init__(
        self,
        versions: Callable[[], Sequence[str]],
        tier: Callable[[str], Any],  # version -> pipeline.tiers.cascade.Tier
        encoder: Any,  # ColumnEncoder for shadow_result on <stream>.shadow
        topic: str,
        publish: Callable[[Sequence[OutboundMessage]], None],
        model_name: str,
        key_field: str,
        queue_batches: int = QUEUE_BATCHES,
        max_share: float | None = None,
    ) -> None:
        """`max_share`: at most this share of wall time on the shadow thread (it sleeps after
        each job in proportion); jobs that arrive faster are dropped (counted). None: no cap."""
        if max_share is not None and not 0 < max_share <= 1:
            raise ValueError(f"max_share {max_share!r} must be in (0, 1]")
        self.max_share = max_share
        self.versions, self.tier, self.encoder, self.topic = versions, tier, encoder, topic
        self.publish, self.model_name, self.key_field = publish, model_name, key_field
        self.stats = ShadowStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue(queue_batches)
        self._last_logged: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    # -- serving side: cheap -----------------------------------------------------------------
    def attach(
        self,
        outbound: list[OutboundMessage],
        prepared: Any,
        outputs: np.ndarray,
        fields: Mapping[str, Any],
        tier: Mapping[str, Any],
        tier_columns: Mapping[str, Any],
        served_at: int,
        inference_ms: float,
    ) -> list[OutboundMessage]:
        if not self.versions() or "score" not in fields or not prepared.requests:
            return outbound
        wrapped = _Outbound(outbound)
        requests = prepared.requests
        served = {
            name: tier_columns.get(name, tier.get(name))
            for name in ("model_version", "route", "cost_units")
        }
        job = _Job(
            prepared.matrix, [r["request_id"] for r in requests],
            [r.get(self.key_field) for r in requests], served,
            np.asarray(fields["score"], dtype=np.float64), list(fields.get("decision") or []),
            served_at, inference_ms,
        )  # fmt: skip
        wrapped.after_delivery = lambda: self.submit(job)
        return wrapped

    def submit(self, job: _Job) -> None:
        self.stats.submitted += 1
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.dropped += 1

    # -- the shadow thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                return
            started = time.perf_counter()
            for version in list(self.versions()):
                try:
                    self._score(version, job)
                except Exception as exc:
                    self.stats.failures += 1
                    now = time.monotonic()
                    if now - self._last_logged.get(version, -1e9) > 60:
                        self._last_logged[version] = now
                        log.error("shadow %s failed on a batch (serving unaffected): %r",
                                  version, exc)  # fmt: skip
            if self.max_share is not None and self.max_share < 1:
                took = time.perf_counter() - started
                time.sleep(took * (1 / self.max_share - 1))
            self._queue.task_done()

    def _score(self, version: str, job: _Job) -> None:
        tier = self.tier(version)
        started = time.perf_counter()
        outputs = tier.model.predict(job.matrix)
        took_ms = (time.perf_counter() - started) * 1000
        shadow = tier.head(outputs)
        n = len(job.request_ids)
        shadow_score = np.asarray(shadow["score"], dtype=np.float64)
        shadow_decision = list(shadow.get("decision") or [""] * n)
        served_decision = job.decision or [""] * n
        constants: dict[str, Any] = {
            "model_name": self.model_name,
            "shadow_version": version,
            "shadow_cost_units": tier.units,
            "shadow_batch_ms": took_ms,
            "served_inference_ms": job.inference_ms,
            "batch_size": n,
            "served_at": job.served_at,
            "shadowed_at": time.time_ns() // 1_000_000,
        }
        columns: dict[str, Any] = {
            "request_id": job.request_ids,
            "key": job.keys,
            "served_score": job.score,
            "served_decision": served_decision,
            "shadow_score": shadow_score,
            "shadow_decision": shadow_decision,
            "score_delta": shadow_score - job.score,
            "flipped": [a != b for a, b in zip(shadow_decision, served_decision, strict=True)],
        }
        for name, target in (
            ("model_version", "served_version"),
            ("route", "served_route"),
            ("cost_units", "served_cost_units"),
        ):
            value = job.served[name]
            if isinstance(value, list | np.ndarray):
                columns[target] = value
            else:
                constants[target] = value
        records = self.encoder.encode(constants, columns)
        topic = self.topic
        messages = []
        for rid, record in zip(job.request_ids, records, strict=True):
            key = rid.encode()
            messages.append(OutboundMessage(topic, key, record, [("request_id", key)]))
        self.publish(messages)
        stats = self.stats
        stats.scored_batches += 1
        stats.scored_rows += n
        stats.published += n
        per = stats.by_version.setdefault(version, {"rows": 0, "ms": 0.0})
        per["rows"] += n
        per["ms"] += took_ms

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until the queue is empty (tests, shutdown); False when it is not by then."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)


def shadow_report(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Served vs shadow agreement per shadow version, from decoded ShadowResult records."""
    by_version: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_version.setdefault(str(record["shadow_version"]), []).append(record)
    versions = {}
    for version, rows in sorted(by_version.items()):
        delta = np.array([r["score_delta"] for r in rows], dtype=np.float64)
        flips: dict[str, int] = {}
        for r in rows:
            if r["flipped"]:
                pair = f"{r['served_decision']}->{r['shadow_decision']}"
                flips[pair] = flips.get(pair, 0) + 1
        batches = {(r["served_at"], r["batch_size"], r["shadow_batch_ms"]) for r in rows}
        shadow_ms = sum(ms for _, _, ms in batches)
        shadow_rows = sum(size for _, size, _ in batches)
        served_ms = {(r["served_at"], r["batch_size"], r["served_inference_ms"]) for r in rows}
        abs_delta = np.abs(delta)
        versions[version] = {
            "rows": len(rows),
            "served_versions": sorted({str(r["served_version"]) for r in rows}),
            "flips": int(sum(flips.values())),
            "flip_rate": round(sum(flips.values()) / len(rows), 6),
            "flips_by_decision": dict(sorted(flips.items())),
            "score_delta": {
                "mean": round(float(delta.mean()), 6),
                "mean_abs": round(float(abs_delta.mean()), 6),
                "p50_abs": round(float(np.quantile(abs_delta, 0.5)), 6),
                "p99_abs": round(float(np.quantile(abs_delta, 0.99)), 6),
                "max_abs": round(float(abs_delta.max()), 6),
            },
            "cost_units_per_row": {
                "served": round(float(np.mean([r["served_cost_units"] for r in rows])), 6),
                "shadow": round(float(np.mean([r["shadow_cost_units"] for r in rows])), 6),
            },
            "ms_per_row": {
                "served": round(
                    sum(ms for _, _, ms in served_ms) / max(sum(s for _, s, _ in served_ms), 1), 6
                ),
                "shadow": round(shadow_ms / max(shadow_rows, 1), 6),
            },
            "lag_ms_p99": round(
                float(
                    np.quantile([_ms(r["shadowed_at"]) - _ms(r["served_at"]) for r in rows], 0.99)
                ),
                1,
            ),
        }
    return {"rows": len(records), "versions": versions}


def _ms(value: Any) -> float:
    """Epoch ms of a decoded timestamp-millis (a datetime, or an int without logical types)."""
    timestamp = getattr(value, "timestamp", None)
    return timestamp() * 1000 if timestamp is not None else float(value)
