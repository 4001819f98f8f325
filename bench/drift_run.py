"""The drift worker's configuration: flat-out throughput and lag under fixed offered rates.

The drift engine writes nothing per request (only alerts), so the Collector's latency does not
apply: its progress is read from its group's (`<namespace><app id>-drift`) committed offsets on the
requests topic (bench/offsets.py). Lag = end offsets - committed offsets.

* **Flat out**: the same backlog as every config (at least DRIFT_MIN_BACKLOG events, see
  Target.backlog), then the worker starts; throughput = offsets committed from the first
  commit after it said ready (excluded) to the last one / time. The drift config commits every
  DRIFT_COMMIT_INTERVAL_S (bench/run.py) so that there are enough commits to time.
* **Fixed rates**: the plan's loads, and always 90 % (the issue's target), of the *reference*
  flat-out rate, offered for `--rate-seconds` each. Unlike the scoring configs, no phase is
  skipped: a worker that falls behind shows it as growing lag, and as lag left to drain after
  the last request (what `sustained` judges, see GROWTH_SHARE). Before each phase the lag of the
  previous one is drained (or the phase is marked `after_undrained_lag`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.events import EventPool, produce_paced
from bench.measure import (
    Plan,
    Setup,
    busy_cores,
    delete_topics,
    live_producer,
    loadavg,
    offered_rates,
    set_up,
    system_busy,
    worker_cpu,
)
from bench.offsets import OffsetSampler, Sample
from bench.targets import Target

TARGET_LOAD = 0.9  # the issue: the drift worker sustains 90 % of the scoring worker's rate
# A phase is sustained when the lag did not grow while the rate was offered and what was left
# at the last request drained soon after:
# * the lag's trend (least-squares slope, events/s) is ~0 for a worker that keeps up and
#   r - c for one of capacity c offered r > c; it must stay below GROWTH_SHARE x r. 10 %, not
#   less: on shared cores the lag comes in bursts (~0.4 s of events seen at 2 s smoke phases)
#   that tilt a short phase's fit by 5-8 % of the rate even when the worker keeps up.
# * the drain within max(DRAIN_FLOOR_S, DRAIN_SHARE x phase): (r / c - 1) x T for r > c; the
#   floor covers a keeping-up worker's own drain (commit interval, batch in flight, sampling).
GROWTH_SHARE = 0.1
DRAIN_FLOOR_S = 0.5
DRAIN_SHARE = 0.05
MIN_COMMITS = 5  # distinct commits flat out for a rate between commits (see _flat_result)


def drift_loads(plan: Plan) -> tuple[float, ...]:
    return tuple(sorted({*plan.loads, TARGET_LOAD}))


def run_drift_target(
    target: Target, index: int, plan: Plan, pool: EventPool, reference_rate: float | None
) -> dict[str, Any]:
    cfg = plan.settings
    setup = set_up(target, index, plan, pool)
    process, backlog = setup.process, len(setup.flat.events)
    group = f"{setup.namespace}{setup.app_id}-drift"  # pipeline.assembly.group_id
    sampler = OffsetSampler(cfg.kafka_bootstrap, setup.spec.requests, group)
    sampler.start()
    started = time.monotonic()
    out: dict[str, Any] = {"target": target.name, "namespace": setup.namespace}
    try:
        process.start(timeout=120)
        ready_at, cpu0 = time.time(), worker_cpu(process)
        out["startup_s"] = round(time.monotonic() - started, 2)
        busy0 = system_busy()
        complete = sampler.wait_committed(backlog, timeout=300, idle=20)
        cpu1 = worker_cpu(process)
        busy1 = system_busy()
        out["flat"] = _flat_result(sampler.samples, ready_at, backlog, complete, cpu1 - cpu0)
        out["flat"]["backlog_load_s"] = round(setup.load_s, 3)
        out["flat"]["system_busy_cores"] = busy_cores(busy0, busy1)
        out["loadavg_1m"] = loadavg()
        loads = drift_loads(plan)
        rates = offered_rates(
            plan, loads, reference_rate, out["flat"].get("events_per_s"), target.name
        )
        out["rates"] = rates
        out["loads"] = _rate_phases(plan, pool, loads, rates, sampler, setup, backlog)
    finally:
        process.stop()
        sampler.stop()
    if sampler.error:
        out["sampler_error"] = sampler.error  # the last one; sampling went on after it
    if not plan.keep_topics:
        delete_topics(cfg.kafka_bootstrap, setup.namespace)
    return out


def _flat_result(
    samples: list[Sample], ready_at: float, backlog: int, complete: bool, cpu_s: float
) -> dict[str, Any]:
    """Throughput from the commits; CPU from ready to the last commit, over the whole backlog.

    Commits come every DRIFT_COMMIT_INTERVAL_S, so the rate is taken from the first commit
    (its events not counted) to the last when there were enough commits in between; with
    fewer, from the ready line (a lower bound: it includes the first fetch).
    """
    moved = [s for s in samples if s.at >= ready_at and s.committed > 0]
    result: dict[str, Any] = {"events": backlog, "complete": complete}
    if not moved:
        return {**result, "completed": 0, "complete": False}
    first = moved[0]
    last = next((s for s in moved if s.committed >= backlog), moved[-1])
    commits = len({s.committed for s in moved if s.at <= last.at})
    if commits >= MIN_COMMITS:
        start, done, counted_from = first.at, first.committed, "first commit"
    else:
        start, done, counted_from = ready_at, 0, "ready"
    counted, span = last.committed - done, last.at - start
    result.update(
        completed=min(backlog, last.committed),
        events_per_s=round(counted / span, 1) if span > 0 and counted > 0 else None,
        span_s=round(span, 3),
        counted=counted,
        counted_from=counted_from,
        commits_seen=commits,
        cpu_s_per_1k=round(cpu_s / last.committed * 1000, 4),
    )
    return result


def _rate_phases(
    plan: Plan,
    pool: EventPool,
    loads: tuple[float, ...],
    rates: list[float],
    sampler: OffsetSampler,
    setup: Setup,
    backlog: int,
) -> list[dict[str, Any]]:
    producer = live_producer(plan, setup.spec)
    results: list[dict[str, Any]] = []
    offset, produced = max(plan.events, backlog), backlog
    for load, rate in zip(loads, rates, strict=True):
        # the previous phase's lag first: a phase starting behind would measure that one
        drained = sampler.wait_committed(produced, timeout=max(15.0, 2 * plan.rate_seconds), idle=8)
        time.sleep(0.5)  # let the worker's batches and commits settle, as for scoring configs
        count = max(1, round(rate * plan.rate_seconds))
        events = pool.events(offset, offset + count)
        offset += count
        sent_at = [0.0] * count
        cpu0, busy0 = worker_cpu(setup.process), system_busy()
        begin = time.time()
        achieved = produce_paced(producer, setup.spec.requests, events, rate, sent_at)
        last_sent = max(sent_at)
        produced += count
        complete = sampler.wait_committed(
            produced, timeout=max(15.0, 2 * plan.rate_seconds), idle=8
        )
        cpu1, busy1 = worker_cpu(setup.process), system_busy()
        phase = _lag_result(sampler, begin, last_sent, produced, rate, plan.rate_seconds)
        results.append(
            {
                "load": load,
                "offered_per_s": round(rate, 1),
                "achieved_offer_per_s": round(achieved, 1),
                "events": count,
                "complete": complete,
                **({} if drained else {"after_undrained_lag": True}),
                **phase,
                "cpu_s_per_1k": round((cpu1 - cpu0) / count * 1000, 4),
                "system_busy_cores": busy_cores(busy0, busy1),
            }
        )
    return results


def _lag_result(
    sampler: OffsetSampler,
    begin: float,
    last_sent: float,
    produced: int,
    rate: float,
    rate_seconds: float,
) -> dict[str, Any]:
    """Lag while the rate was offered: start, end, max, its trend, and the drain after it."""
    during = sampler.between(begin, last_sent)
    done = next((s for s in sampler.samples if s.at >= begin and s.committed >= produced), None)
    drain_s = None if done is None else max(0.0, done.at - last_sent)
    if len(during) < 2:
        drain = None if drain_s is None else round(drain_s, 3)
        return {"samples": len(during), "drain_s": drain, "sustained": None}
    t = np.array([s.at - begin for s in during])
    lag = np.array([s.lag for s in during], dtype=float)
    # the lag's trend (events/s): ~0 when the worker keeps up (a sawtooth of commit intervals
    # and batches in flight), offered rate - capacity when it does not
    growth = float(np.polyfit(t, lag, 1)[0])
    committed = (during[-1].committed - during[0].committed) / max(1e-9, t[-1] - t[0])
    sustained = (
        growth <= GROWTH_SHARE * rate
        and drain_s is not None
        and drain_s <= max(DRAIN_FLOOR_S, DRAIN_SHARE * rate_seconds)
    )
    return {
        "samples": len(during),
        "committed_per_s": round(committed, 1),
        "lag_start": int(lag[0]),
        "lag_end": int(lag[-1]),
        "max_lag": int(lag.max()),
        "lag_growth_per_s": round(growth, 1),
        "drain_s": None if drain_s is None else round(drain_s, 3),
        "sustained": sustained,
        "saturated": not sustained,
    }
