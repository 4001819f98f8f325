"""Which offset of each partition may be committed: one past its delivered prefix.

Batches are added in consume order with the highest offset they hold per partition. A batch
is marked done once its handler delivered every output (a dead letter is an output, so a
dead-lettered message counts once its dead letter is delivered). A partition's committable
offset is one past the last offset of the run of done batches from its oldest pending one: a
batch still in flight holds back every later batch in the partitions it touches, however those
finished. Offsets need not be contiguous (compaction, transaction markers): only order matters.

Revoked or lost partitions are forgotten; a batch that finishes later commits nothing there.
Thread-safe: batches are added and offsets taken on the consumer thread, marked done on the
handler's last stage.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping

from pipeline.core.batch import TopicPartitionKey


class _Entry:
    __slots__ = ("done", "last_offset")

    def __init__(self, last_offset: int) -> None:
        self.last_offset = last_offset
        self.done = False


class OffsetTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[TopicPartitionKey, deque[_Entry]] = {}
        self._batches: dict[int, list[tuple[TopicPartitionKey, _Entry]]] = {}
        self._committable: dict[TopicPartitionKey, int] = {}
        self._committed: dict[TopicPartitionKey, int] = {}

    def add(self, seq: int, last_offsets: Mapping[TopicPartitionKey, int]) -> None:
        with self._lock:
            entries = []
            for tp, offset in last_offsets.items():
                entry = _Entry(offset)
                self._pending.setdefault(tp, deque()).append(entry)
                entries.append((tp, entry))
            self._batches[seq] = entries

    def done(self, seq: int) -> None:
        with self._lock:
            for tp, entry in self._batches.pop(seq, ()):
                entry.done = True
                queue = self._pending.get(tp)
                if queue is None:  # revoked or lost meanwhile
                    continue
                while queue and queue[0].done:
                    self._committable[tp] = queue.popleft().last_offset + 1

    def in_flight(self) -> int:
        with self._lock:
            return len(self._batches)

    def to_commit(
        self, partitions: Iterable[TopicPartitionKey] | None = None, only_new: bool = True
    ) -> dict[TopicPartitionKey, int]:
        """Committable offsets (of `partitions`, or all); `only_new`: those not yet committed."""
        with self._lock:
            if partitions is None:
                wanted = dict(self._committable)
            else:
                wanted = {tp: self._committable[tp] for tp in partitions if tp in self._committable}
            if not only_new:
                return wanted
            return {tp: o for tp, o in wanted.items() if self._committed.get(tp) != o}

    def committed(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        with self._lock:
            self._committed.update(offsets)

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """Drop revoked or lost partitions: nothing of theirs is committed from here on."""
        with self._lock:
            for tp in partitions:
                self._pending.pop(tp, None)
                self._committable.pop(tp, None)
                self._committed.pop(tp, None)
