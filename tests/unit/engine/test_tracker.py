"""OffsetTracker: a partition commits only one past its delivered prefix."""

from __future__ import annotations

import threading

from pipeline.core.batch import TopicPartitionKey
from pipeline.engine.tracker import OffsetTracker

P0: TopicPartitionKey = ("events", 0)
P1: TopicPartitionKey = ("events", 1)
P2: TopicPartitionKey = ("events", 2)
OTHER: TopicPartitionKey = ("other", 0)


def test_nothing_to_commit_before_any_batch_is_done() -> None:
    tracker = OffsetTracker()
    assert tracker.to_commit() == {}
    tracker.add(1, {P0: 9})
    assert tracker.to_commit() == {}
    assert tracker.to_commit(only_new=False) == {}
    assert tracker.in_flight() == 1


def test_in_order_completion_commits_one_past_each_batch() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9})
    tracker.add(2, {P0: 19})
    tracker.done(1)
    assert tracker.to_commit() == {P0: 10}
    tracker.done(2)
    assert tracker.to_commit() == {P0: 20}
    assert tracker.in_flight() == 0


def test_later_batch_done_first_holds_the_partition_back() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9})
    tracker.add(2, {P0: 19})
    tracker.add(3, {P0: 29})
    tracker.done(2)
    tracker.done(3)
    assert tracker.to_commit() == {}
    assert tracker.to_commit(only_new=False) == {}
    assert tracker.in_flight() == 1
    tracker.done(1)
    assert tracker.to_commit() == {P0: 30}
    assert tracker.in_flight() == 0


def test_gap_in_the_middle_advances_only_to_the_gap() -> None:
    tracker = OffsetTracker()
    for seq, last in ((1, 9), (2, 19), (3, 29), (4, 39)):
        tracker.add(seq, {P0: last})
    tracker.done(1)
    tracker.done(3)
    tracker.done(4)
    assert tracker.to_commit() == {P0: 10}  # batch 2 still in flight
    tracker.done(2)
    assert tracker.to_commit() == {P0: 40}


def test_batch_spanning_partitions_holds_back_each_it_touches() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 5, P1: 105})
    tracker.add(2, {P0: 8})
    tracker.add(3, {P1: 110, P2: 7})
    tracker.done(2)
    tracker.done(3)
    # batch 1 holds P0 and P1; P2 is only in batch 3, which is done
    assert tracker.to_commit() == {P2: 8}
    tracker.done(1)
    assert tracker.to_commit(only_new=False) == {P0: 9, P1: 111, P2: 8}


def test_spanning_batch_done_advances_all_its_partitions() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 5, P1: 105, OTHER: 0})
    tracker.done(1)
    assert tracker.to_commit() == {P0: 6, P1: 106, OTHER: 1}


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 5})
    tracker.add(2, {P1: 50})
    tracker.done(2)
    assert tracker.to_commit() == {P1: 51}
    tracker.done(1)
    assert tracker.to_commit(only_new=False) == {P0: 6, P1: 51}


def test_non_contiguous_offsets_commit_one_past_the_last() -> None:
    # compaction / transaction markers: offsets jump, only order matters
    tracker = OffsetTracker()
    tracker.add(1, {P0: 3})
    tracker.add(2, {P0: 1000})
    tracker.add(3, {P0: 1_000_000})
    tracker.done(1)
    assert tracker.to_commit() == {P0: 4}
    tracker.done(2)
    assert tracker.to_commit() == {P0: 1001}
    tracker.done(3)
    assert tracker.to_commit() == {P0: 1_000_001}


def test_dead_lettered_message_counts_once_its_batch_is_done() -> None:
    # batch 2 holds a message that went to the dead-letter topic; the handler's last stage
    # returns once that dead letter is delivered, which marks batch 2 done like any other
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9})
    tracker.add(2, {P0: 10})  # the dead-lettered message, offset 10
    tracker.add(3, {P0: 11})
    tracker.done(1)
    tracker.done(3)
    assert tracker.to_commit() == {P0: 10}  # the dead letter is not delivered yet
    tracker.done(2)
    assert tracker.to_commit() == {P0: 12}


def test_only_new_returns_just_the_offsets_that_moved_since_committed() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9, P1: 19})
    tracker.done(1)
    first = tracker.to_commit()
    assert first == {P0: 10, P1: 20}
    tracker.committed(first)
    assert tracker.to_commit() == {}
    assert tracker.to_commit(only_new=True) == {}
    assert tracker.to_commit(only_new=False) == {P0: 10, P1: 20}

    tracker.add(2, {P1: 29})
    tracker.done(2)
    assert tracker.to_commit() == {P1: 30}
    assert tracker.to_commit(only_new=False) == {P0: 10, P1: 30}

    tracker.committed({P1: 30})
    assert tracker.to_commit() == {}


def test_committed_with_an_older_offset_still_reports_the_newer_one() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9})
    tracker.done(1)
    tracker.committed(tracker.to_commit())
    tracker.add(2, {P0: 19})
    tracker.done(2)
    tracker.committed({P0: 10})  # a stale (asynchronous) commit callback
    assert tracker.to_commit() == {P0: 20}


def test_to_commit_of_chosen_partitions() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9, P1: 19})
    tracker.done(1)
    assert tracker.to_commit([P1]) == {P1: 20}
    assert tracker.to_commit([P0, P2]) == {P0: 10}  # P2 has nothing committable
    assert tracker.to_commit([]) == {}
    tracker.committed({P0: 10})
    assert tracker.to_commit([P0, P1]) == {P1: 20}
    assert tracker.to_commit([P0, P1], only_new=False) == {P0: 10, P1: 20}


def test_done_of_unknown_or_repeated_seq_is_harmless() -> None:
    tracker = OffsetTracker()
    tracker.done(42)
    tracker.add(1, {P0: 9})
    tracker.add(2, {P0: 19})
    tracker.done(1)
    tracker.done(1)
    assert tracker.to_commit() == {P0: 10}
    assert tracker.in_flight() == 1


def test_forget_drops_partition_and_late_batch_commits_nothing_there() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9, P1: 19})
    tracker.add(2, {P0: 29})
    tracker.done(2)
    tracker.forget([P0])
    assert tracker.to_commit(only_new=False) == {}
    tracker.done(1)  # finishes after the revoke
    assert tracker.to_commit(only_new=False) == {P1: 20}
    assert P0 not in tracker.to_commit(only_new=False)
    assert tracker.in_flight() == 0


def test_forget_drops_committable_and_committed_state() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9, P1: 19})
    tracker.done(1)
    tracker.committed(tracker.to_commit())
    tracker.forget([P0])
    assert tracker.to_commit(only_new=False) == {P1: 20}
    assert tracker.to_commit() == {}


def test_other_partitions_keep_advancing_after_forget() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9, P1: 19})
    tracker.add(2, {P0: 39, P1: 29})
    tracker.forget([P0])
    tracker.done(1)
    assert tracker.to_commit() == {P1: 20}
    tracker.done(2)
    assert tracker.to_commit() == {P1: 30}


def test_forget_unknown_partition_is_harmless() -> None:
    tracker = OffsetTracker()
    tracker.forget([P2])
    tracker.add(1, {P0: 9})
    tracker.done(1)
    tracker.forget([P2])
    assert tracker.to_commit() == {P0: 10}


def test_reassignment_after_forget_starts_fresh() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9})
    tracker.done(1)
    tracker.committed(tracker.to_commit())
    tracker.forget([P0])

    # re-assigned: the partition starts over, the same offset is new again
    tracker.add(2, {P0: 9})
    tracker.done(2)
    assert tracker.to_commit() == {P0: 10}
    tracker.add(3, {P0: 14})
    tracker.done(3)
    assert tracker.to_commit() == {P0: 15}


def test_reassignment_while_a_pre_revoke_batch_is_still_in_flight() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 9})  # in flight when P0 is revoked
    tracker.forget([P0])
    tracker.add(2, {P0: 19})  # re-assigned, consumed again from the committed position
    tracker.add(3, {P0: 29})
    tracker.done(1)  # the old batch must neither advance nor hold back the new queue
    assert tracker.to_commit() == {}
    tracker.done(3)
    assert tracker.to_commit() == {}  # batch 2 still holds P0
    tracker.done(2)
    assert tracker.to_commit() == {P0: 30}
    assert tracker.in_flight() == 0


def test_in_flight_counts_batches_not_partitions() -> None:
    tracker = OffsetTracker()
    tracker.add(1, {P0: 1, P1: 1, P2: 1})
    tracker.add(2, {P0: 2})
    assert tracker.in_flight() == 2
    tracker.done(1)
    assert tracker.in_flight() == 1


def test_concurrent_done_from_another_thread() -> None:
    tracker = OffsetTracker()
    n = 2000
    for seq in range(n):
        tracker.add(seq, {P0: seq * 2, P1: seq * 3})
    order = list(range(n))
    halves = (order[1::2], order[0::2])  # two threads finish batches in interleaved order

    def finish(seqs: list[int]) -> None:
        for seq in seqs:
            tracker.done(seq)

    threads = [threading.Thread(target=finish, args=(h,)) for h in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert tracker.in_flight() == 0
    assert tracker.to_commit() == {P0: (n - 1) * 2 + 1, P1: (n - 1) * 3 + 1}
