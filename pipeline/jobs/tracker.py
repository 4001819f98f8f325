"""The job tracker: an engine handler that counts a stream's outputs per job.

It consumes the stream's results, provenance and dead letters in a consumer group of its own
(`<ns><app id>-jobs`), so it never holds back scoring, and commits after each batch like any
engine. Per batch: the job events (events.py), counted idempotently in one store call, then
each touched job moved to the state its counts call for (lifecycle.py).

A job the store does not know (Redis lost its data) is rebuilt from the topics (`rebuild`);
when the store does not answer, the batch's jobs are remembered as stale and rebuilt once it
answers again, so counts lost to a Redis outage come back from the topics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.core.batch import Batch
from pipeline.core.handler import Stage
from pipeline.core.topics import StreamTopics
from pipeline.jobs.events import Decode, JobEvent, events_from
from pipeline.jobs.lifecycle import settle
from pipeline.jobs.progress import JobSnapshot

log = logging.getLogger("inferstream.jobs")


class TrackerStore(Protocol):
    def apply(self, events: Sequence[JobEvent]) -> list[str] | None: ...

    def known(self, job_ids: Sequence[str]) -> dict[str, bool] | None: ...

    def snapshot(self, job_id: str) -> JobSnapshot | None: ...

    def move(self, job_id: str, expected: str, new: str) -> bool: ...


@dataclass
class TrackerStats:
    events: int = 0
    rebuilt: int = 0
    stale: int = 0


class JobTracker:
    name: str

    def __init__(
        self,
        stream: str,
        topics: StreamTopics,
        store: TrackerStore,
        decode: Decode,
        rebuild: Callable[[str], Any] | None = None,
    ) -> None:
        self.name = f"jobs-{stream}"
        self.topics = topics
        self.store = store
        self.decode = decode
        self.rebuild = rebuild
        self.stats = TrackerStats()
        self._stale: set[str] = set()

    @property
    def input_topics(self) -> tuple[str, ...]:
        return (self.topics.results, self.topics.provenance, self.topics.dlq)

    def stages(self) -> Sequence[Stage]:
        return [Stage("track", self.track)]

    def close(self) -> None:
        pass

    def track(self, batch: Batch) -> None:
        self.track_events(events_from(batch.messages, self.topics, self.decode))

    def track_events(self, events: list[JobEvent]) -> None:
        jobs = list(dict.fromkeys(e.job for e in events))
        known = self.store.known(jobs) if jobs else {}
        if known is None:
            self._went_stale(jobs)
            return
        self._rebuild_stale()
        unknown = {job for job, ok in known.items() if not ok}
        for job in unknown:
            # the rebuild reads the topics up to their end, this batch's records included
            self._rebuild(job)
        counted = [e for e in events if e.job not in unknown]
        touched = self.store.apply(counted)
        if touched is None:
            self._went_stale(jobs)
            return
        self.stats.events += len(counted)
        for job in touched:
            settle(self.store, job)

    def _went_stale(self, jobs: list[str]) -> None:
        if jobs and not self._stale.issuperset(jobs):
            log.warning("job store unavailable: counts of %d job(s) rebuilt later", len(jobs))
        self._stale.update(jobs)
        self.stats.stale = len(self._stale)

    def _rebuild_stale(self) -> None:
        for job in sorted(self._stale):
            if self._rebuild(job):
                self._stale.discard(job)
        self.stats.stale = len(self._stale)

    def _rebuild(self, job: str) -> bool:
        if self.rebuild is None:
            return False
        try:
            self.rebuild(job)
        except Exception as exc:  # a job not in the journal (e.g. deleted): counted from now
            log.warning("could not rebuild job %s from the topics: %s", job, exc)
            return False
        self.stats.rebuilt += 1
        return True
