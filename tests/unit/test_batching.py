"""The batch queue, driven by a fake clock: no sleeps, no event loop."""

from __future__ import annotations

import numpy as np
import pytest

from brickwork import Batching, Overloaded
from brickwork.batching import BatchQueue, LatencyProfile, Pending, batch_key, rows_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt


class Waiter:
    """Stands in for the stage's future: ``done()`` once the caller gave up."""

    def __init__(self) -> None:
        self.given_up = False

    def done(self) -> bool:
        return self.given_up


def req(clock: Clock, rows: int = 1, *, value: float = 0.0, width: int = 4, deadline: float | None = None,
        dtype: type = np.float32) -> Pending:
    inputs = {"x": np.full((rows, width), value, dtype=dtype)}
    return Pending(inputs, rows_of(inputs), clock(), deadline, batch_key(inputs), waiter=Waiter())


def queue(clock: Clock, **batching: object) -> BatchQueue:
    return BatchQueue(Batching(**batching), clock=clock)  # type: ignore[arg-type]


def test_full_batch_goes_at_once_without_waiting_for_the_delay() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=4, max_delay_s=1.0)
    for _ in range(3):
        q.put(req(clock))
    assert q.due_in() == pytest.approx(1.0)
    assert q.take().requests == []
    q.put(req(clock))
    assert q.due_in() == 0.0
    assert len(q.take().requests) == 4
    assert len(q) == 0


def test_partial_batch_waits_out_max_delay_from_the_oldest_request() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, max_delay_s=0.010)
    q.put(req(clock))
    clock.advance(0.004)
    q.put(req(clock))
    assert q.due_in() == pytest.approx(0.006)
    clock.advance(0.006)
    batch = q.take()
    assert batch.rows == 2


def test_no_delay_means_whatever_is_queued_goes_now() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8)
    q.put(req(clock))
    q.put(req(clock, 2))
    assert q.due_in() == 0.0
    assert q.take().rows == 3


def test_max_batch_size_counts_items_not_requests() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=5)
    first, second, third = req(clock, 3), req(clock, 3), req(clock, 2)
    for r in (first, second, third):
        q.put(r)
    batch = q.take()
    # 3 + 3 would exceed 5: the second waits, the third (2 items) fits after the first
    assert batch.requests == [first, third]
    assert q.take().requests == [second]


def test_preferred_size_is_sent_before_the_delay_and_cut_there() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=16, max_delay_s=1.0, preferred_batch_sizes=(4, 8))
    for _ in range(3):
        q.put(req(clock))
    assert q.due_in() == pytest.approx(1.0)
    q.put(req(clock))
    q.put(req(clock))  # 5 queued: 4 is a preferred size reached on the way
    assert q.due_in() == 0.0
    assert q.take().rows == 4
    assert len(q) == 1
    clock.advance(1.0)
    assert q.take().rows == 1


def test_after_the_delay_the_largest_batch_goes_not_the_preferred_cut() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=16, max_delay_s=0.5, preferred_batch_sizes=(4,))
    for _ in range(6):
        q.put(req(clock))
    clock.advance(0.5)
    assert q.take().rows == 6


def test_requests_with_different_trailing_shapes_are_not_merged() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8)
    a, b, c = req(clock, width=4), req(clock, width=3), req(clock, width=4)
    for r in (a, b, c):
        q.put(r)
    assert q.take().requests == [a, c]
    assert q.take().requests == [b]


def test_full_queue_raises_overloaded_with_a_retry_hint() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=2, max_queue_size=3)
    for _ in range(3):
        q.put(req(clock))
    with pytest.raises(Overloaded) as info:
        q.put(req(clock), retry_after_s=0.25)
    assert info.value.status == 503
    assert info.value.retry_after_s == 0.25
    assert "max_queue_size=3" in str(info.value)
    assert len(q) == 3  # the refused request left no trace


def test_put_all_is_all_or_nothing() -> None:
    clock = Clock()
    q = queue(clock, max_queue_size=3)
    q.put(req(clock))
    with pytest.raises(Overloaded):
        q.put_all([req(clock), req(clock), req(clock)])
    assert len(q) == 1


def test_expired_requests_are_dropped_before_compute() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, max_delay_s=0.1)
    late = req(clock, deadline=clock() + 0.05)
    fine = req(clock, deadline=clock() + 10)
    q.put(late)
    q.put(fine)
    clock.advance(0.1)
    batch = q.take()
    assert batch.expired == [late]
    assert batch.requests == [fine]
    assert len(q) == 0


def test_abandoned_requests_are_dropped_too() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8)
    gone, kept = req(clock), req(clock)
    q.put(gone)
    q.put(kept)
    gone.waiter.given_up = True
    batch = q.take()
    assert batch.expired == [gone] and batch.requests == [kept]


def test_only_expired_requests_make_an_empty_batch_that_is_due() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, max_delay_s=1.0)
    q.put(req(clock, deadline=clock() + 0.01))
    clock.advance(0.02)
    assert q.due_in() == 0.0
    batch = q.take()
    assert batch.requests == [] and len(batch.expired) == 1
    assert q.due_in() is None


def test_split_back_order_is_fifo_and_rows_add_up() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=10)
    reqs = [req(clock, n, value=i) for i, n in enumerate((1, 3, 2, 4))]
    for r in reqs:
        q.put(r)
    batch = q.take()
    assert batch.requests == reqs
    merged = np.concatenate([r.inputs["x"] for r in batch.requests])
    starts = np.cumsum([0] + [r.rows for r in batch.requests])
    for i in range(len(batch.requests)):
        assert (merged[starts[i]:starts[i + 1]] == i).all()


def test_non_rowwise_bricks_never_merge() -> None:
    clock = Clock()
    q = BatchQueue(Batching(max_batch_size=8, max_delay_s=1.0), rowwise=False, clock=clock)
    q.put(req(clock))
    q.put(req(clock))
    assert q.due_in() == 0.0  # nothing to wait for: it cannot be merged anyway
    assert len(q.take().requests) == 1
    assert len(q.take().requests) == 1


def test_a_request_over_the_limit_runs_alone_and_whole() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=4, max_delay_s=1.0)
    big, small = req(clock, 10), req(clock, 1)
    q.put(big)
    q.put(small)
    assert q.take().requests == [big]
    assert q.take().requests == []  # the small one now waits for company


def test_requeue_puts_requests_back_in_front_past_the_bound() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=1, max_queue_size=1)
    waiting = req(clock)
    q.put(waiting)
    retried = req(clock)
    retried.alone = True
    q.requeue([retried])
    assert q.take().requests == [retried]
    assert q.take().requests == [waiting]


def test_bytes_tensors_batch_together() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=4)
    for text in ("a", "bb"):
        arr = np.array([text], dtype=object)
        q.put(Pending({"t": arr}, 1, clock(), None, batch_key({"t": arr})))
    batch = q.take()
    assert batch.rows == 2
    assert np.concatenate([r.inputs["t"] for r in batch.requests]).tolist() == ["a", "bb"]


# -- latency-target mode ----------------------------------------------------------------
def test_profile_estimates_unmeasured_sizes_from_a_line() -> None:
    p = LatencyProfile(64)
    assert p.estimate(8) is None and p.size_for(1.0) == 1
    p.record(1, 0.002)
    assert p.estimate(4) == pytest.approx(0.008)  # one point: proportional, pessimistic
    p.record(8, 0.009)
    # two points: 1 ms fixed + 1 ms per item
    assert p.estimate(16) == pytest.approx(0.017)
    assert p.size_for(0.017) == 16
    assert p.size_for(0.0001) == 1


def test_latency_target_picks_the_largest_batch_that_fits_half_the_target() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=64, target_latency_s=0.040)
    assert q.limit() == 1  # nothing measured yet: start small
    assert q.profile is not None
    q.profile.record(1, 0.002)
    q.profile.record(8, 0.009)  # ~1 ms + 1 ms/item -> 19 items fit in 20 ms
    assert q.limit() == 19
    for _ in range(25):
        q.put(req(clock))
    assert q.take().rows == 19


def test_latency_target_waits_only_while_the_oldest_can_still_make_it() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=64, target_latency_s=0.040)
    assert q.profile is not None
    q.profile.record(1, 0.002)
    q.profile.record(8, 0.009)
    q.put(req(clock))
    # limit 19 costs ~20 ms; 2 x 20 ms leaves ~0 ms of slack for waiting
    assert q.due_in() == pytest.approx(0.0, abs=0.002)
    q2 = queue(clock, max_batch_size=8, target_latency_s=0.040)
    assert q2.profile is not None
    q2.profile.record(1, 0.001)
    q2.profile.record(8, 0.008)  # limit 8 costs 8 ms: 40 - 16 = 24 ms of slack
    q2.put(req(clock))
    assert q2.due_in() == pytest.approx(0.024)
    clock.advance(0.024)
    assert q2.take().rows == 1


def test_latency_target_respects_max_delay_when_smaller() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, target_latency_s=1.0, max_delay_s=0.005)
    assert q.profile is not None
    q.profile.record(1, 0.001)
    q.put(req(clock))
    assert q.due_in() == pytest.approx(0.005)


def test_batch_key_refuses_tensors_that_disagree_on_axis_0() -> None:
    assert batch_key({"a": np.zeros((2, 3)), "b": np.zeros((3,))}) is None
    assert batch_key({"a": np.zeros(())}) is None
    assert batch_key({"a": np.zeros((2, 3))}) == batch_key({"a": np.ones((5, 3))})


# -- waiting is for company: with nobody on the way, a free replica takes what is queued ------
def test_a_lone_request_with_nobody_coming_is_due_at_once() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=32, max_delay_s=0.5)
    q.put(req(clock))
    assert q.due_in(coming=0) == 0.0
    assert len(q.take(coming=0).requests) == 1


def test_a_partial_batch_waits_while_requests_are_on_their_way() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, max_delay_s=0.010)
    for _ in range(3):
        q.put(req(clock))
    assert q.due_in(coming=5) == pytest.approx(0.010)
    assert q.take(coming=5).requests == []
    clock.advance(0.004)
    assert q.due_in(coming=2) == pytest.approx(0.006)
    # the last of them arrived: nobody else can join, so the batch goes now, not at 10 ms
    for _ in range(2):
        q.put(req(clock))
    assert q.due_in(coming=0) == 0.0
    assert q.take(coming=0).rows == 5
    assert len(q) == 0


def test_the_delay_still_bounds_the_wait_when_company_never_comes() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, max_delay_s=0.010)
    q.put(req(clock))
    clock.advance(0.010)
    assert q.due_in(coming=3) == 0.0
    assert q.take(coming=3).rows == 1


def test_unknown_traffic_waits_as_configured() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, max_delay_s=0.010)
    q.put(req(clock))
    assert q.due_in(coming=None) == pytest.approx(0.010)
    assert q.take().requests == []


def test_with_nobody_coming_a_batch_is_not_cut_at_a_preferred_size() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=8, max_delay_s=1.0, preferred_batch_sizes=(2,))
    for _ in range(3):
        q.put(req(clock))
    assert q.take(coming=4).rows == 2  # company may come: send the preferred size, keep one
    q.put(req(clock))
    q.put(req(clock))
    assert q.take(coming=0).rows == 3  # nobody comes: everything queued goes now


def test_full_only_still_holds_back_a_partial_batch_behind_a_busy_replica() -> None:
    clock = Clock()
    q = queue(clock, max_batch_size=4, max_delay_s=0.010)
    q.put(req(clock))
    assert q.take(full_only=True, coming=0).requests == []
    assert len(q) == 1
