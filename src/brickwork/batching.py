"""Dynamic batching for one stage: a bounded queue that decides *when* to call the brick and
*with what*.

The queue is pure and synchronous — no event loop, no threads, time from an injectable clock —
so its behaviour is tested deterministically. A stage (``engine/_stage.py``) drives it: it
``put``s requests and, whenever a replica is free, asks ``take(now)`` for a batch, or
``due_in(now)`` for how long to wait before asking again.

How a batch is formed (``take``):

* It starts with the oldest request and adds the following ones, oldest first, whose tensors
  concatenate with it (same names, dtypes and shape after axis 0) while the items (rows, summed
  over requests) stay within the limit. A request that does not fit waits for the next batch.
* Requests whose deadline has passed, or whose caller gave up, are removed on the way and
  returned in ``Batch.expired`` (the stage fails them with ``DeadlineExceeded`` before compute).
* The limit is ``max_batch_size`` items; in latency-target mode it is the size the
  :class:`LatencyProfile` picks. The oldest request is always taken, even when it alone is
  over the limit (so nothing starves). A request that carries more items than
  ``max_batch_size`` therefore runs alone and whole: the caller chose that batch, and splitting
  it would turn one call into many (as TF Serving, brickwork does not split by default; split
  big requests on the client when the model has a hard limit).
* Requests of a non-``rowwise`` brick, or marked ``alone``, are never merged with others.

When a batch is due (``due_in`` returns 0): the limit is reached; or the items reach one of
``preferred_batch_sizes`` (the batch is then cut at the largest preferred size reached);
or ``max_delay_s`` is None (a batch is whatever is queued when a replica is free); or the
oldest request has waited ``max_delay_s``; or **no other request is on its way** to the stage
(``coming=0``: the stage's caller knows how many requests in flight have not reached it yet).
Waiting is for company: when nobody else can join, a batch that waited would only be late, so
one caller through a chain of batched stages pays no ``max_delay_s`` at any of them, while
under load (requests on their way) batches still fill. ``coming=None`` (unknown) waits as
configured.

Latency-target mode (``target_latency_s``, the Clipper idea, per stage): the limit is the largest
batch whose measured compute time fits in half the target (the other half covers waiting behind
the batch in front), and the oldest request waits for company only while
``target - 2 * compute(limit)`` lasts (capped by ``max_delay_s`` when that is set).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import Overloaded
from .options import Batching

__all__ = ["Batch", "BatchQueue", "LatencyProfile", "Pending", "batch_key", "rows_of"]

Clock = Callable[[], float]


def rows_of(inputs: Mapping[str, np.ndarray]) -> int:
    """The request's item count: axis 0 of its tensors (1 for a request without tensors)."""
    for value in inputs.values():
        return int(value.shape[0]) if value.ndim else 1
    return 1


def batch_key(inputs: Mapping[str, np.ndarray]) -> Hashable | None:
    """What must match for two requests to be concatenated: names, dtypes and the shape after
    axis 0. None when the request cannot be merged at all (a scalar, or tensors that disagree
    on axis 0)."""
    if len(inputs) == 1:  # the common case, without the loop's list
        for name, value in inputs.items():
            return ((name, value.dtype.str, value.shape[1:]),) if value.ndim else None
    key = []
    rows = None
    for name, value in inputs.items():
        if value.ndim == 0:
            return None
        if rows is None:
            rows = value.shape[0]
        elif value.shape[0] != rows:
            return None
        key.append((name, value.dtype.str, value.shape[1:]))
    return tuple(key)


@dataclass(slots=True, eq=False)
class Pending:
    """One request waiting in a stage. ``waiter`` is the stage's future (opaque here; a done
    waiter means the caller gave up). ``alone``: never merge it with other requests."""

    inputs: dict[str, np.ndarray]
    rows: int
    enqueued: float
    deadline: float | None = None
    key: Hashable | None = None
    alone: bool = False
    attempts: int = 0
    waiter: Any = None
    trace: Any = None  # the request's OpenTelemetry context, only while tracing is on

    def abandoned(self) -> bool:
        return self.waiter is not None and self.waiter.done()


@dataclass(slots=True)
class Batch:
    """What ``take`` hands out: the requests to run together, and those removed as expired."""

    requests: list[Pending] = field(default_factory=list)
    expired: list[Pending] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.requests)


class LatencyProfile:
    """Measured compute time per batch size (an exponential moving average per size), and the
    largest size whose estimated compute time fits a budget.

    Sizes not measured yet are estimated from a straight-line fit (fixed cost + cost per item)
    over the measured sizes; with one measured size, time is taken as proportional to the
    size above it (a pessimistic guess, so the stage grows its batches step by step)."""

    def __init__(self, max_batch_size: int, *, alpha: float = 0.3) -> None:
        self.max_batch_size = max_batch_size
        self.alpha = alpha
        self._mean: dict[int, float] = {}
        self._fit: tuple[float, float] | None = None
        self._sizes: dict[float, int] = {}

    def record(self, size: int, compute_s: float) -> None:
        old = self._mean.get(size)
        self._mean[size] = compute_s if old is None else old + self.alpha * (compute_s - old)
        self._fit = None
        self._sizes.clear()

    @property
    def measured(self) -> Mapping[int, float]:
        return dict(self._mean)

    def estimate(self, size: int) -> float | None:
        if not self._mean:
            return None
        if size in self._mean:
            return self._mean[size]
        if len(self._mean) == 1:
            (s0, t0), = self._mean.items()
            return t0 * size / s0 if size > s0 else t0
        if self._fit is None:
            sizes = np.fromiter(self._mean, dtype=float)
            times = np.fromiter(self._mean.values(), dtype=float)
            slope, intercept = np.polyfit(sizes, times, 1)
            self._fit = (max(float(intercept), 0.0), max(float(slope), 0.0))
        fixed, per_item = self._fit
        below = [t for s, t in self._mean.items() if s < size]
        return max(fixed + per_item * size, max(below, default=0.0))

    def size_for(self, budget_s: float) -> int:
        """The largest batch size whose estimated compute time is within ``budget_s``; 1 when
        nothing is measured yet or even one item is over budget."""
        cached = self._sizes.get(budget_s)
        if cached is not None:
            return cached
        best = 1
        if self._mean:
            lo, hi = 1, self.max_batch_size
            while lo <= hi:  # estimates never shrink as the size grows
                mid = (lo + hi) // 2
                est = self.estimate(mid)
                if est is not None and est <= budget_s:
                    best, lo = mid, mid + 1
                else:
                    hi = mid - 1
        self._sizes[budget_s] = best
        return best


class BatchQueue:
    """The bounded queue of one stage. See the module docstring for the batching rules."""

    def __init__(
        self,
        batching: Batching,
        *,
        rowwise: bool = True,
        clock: Clock = time.monotonic,
        profile: LatencyProfile | None = None,
    ) -> None:
        self.batching = batching
        self.rowwise = rowwise
        self.clock = clock
        if batching.target_latency_s is not None and profile is None:
            profile = LatencyProfile(batching.max_batch_size)
        self.profile = profile
        self._queue: deque[Pending] = deque()
        self._preferred = frozenset(batching.preferred_batch_sizes)

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self._queue)

    # -- in ----------------------------------------------------------------------------
    def put(self, request: Pending, *, retry_after_s: float = 1.0) -> None:
        """Queue one request, or raise ``Overloaded`` when ``max_queue_size`` are waiting."""
        self.put_all((request,), retry_after_s=retry_after_s)

    def put_all(self, requests: Iterable[Pending], *, retry_after_s: float = 1.0) -> None:
        """Queue several requests (the chunks of one big request) all or none."""
        requests = list(requests)
        limit = self.batching.max_queue_size
        if len(self._queue) + len(requests) > limit:
            raise Overloaded(
                f"stage queue is full ({len(self._queue)} of max_queue_size={limit} requests "
                f"waiting); retry after {retry_after_s:.3f} s or raise max_queue_size/replicas",
                retry_after_s=retry_after_s,
            )
        if not self.rowwise:
            for r in requests:
                r.alone = True
        self._queue.extend(requests)

    def put_one(self, request: Pending) -> bool:
        """Queue one request if there is room (``put_all``'s hot path); False: the queue is
        full, nothing was queued."""
        queue = self._queue
        if len(queue) >= self.batching.max_queue_size:
            return False
        if not self.rowwise:
            request.alone = True
        queue.append(request)
        return True

    def requeue(self, requests: Iterable[Pending]) -> None:
        """Put requests back at the front (a retry), oldest first, ignoring the bound: they
        were already admitted once."""
        self._queue.extendleft(reversed(list(requests)))

    def drain(self) -> list[Pending]:
        """Remove and return everything queued (to fail it on shutdown)."""
        out = list(self._queue)
        self._queue.clear()
        return out

    # -- policy ------------------------------------------------------------------------
    def limit(self) -> int:
        """Most items in the next batch."""
        target = self.batching.target_latency_s
        if target is None or self.profile is None:
            return self.batching.max_batch_size
        return min(self.profile.size_for(target / 2), self.batching.max_batch_size)

    def _delay_s(self, limit: int) -> float | None:
        """How long the oldest request may wait for company; None = not at all."""
        delay = self.batching.max_delay_s
        target = self.batching.target_latency_s
        if target is not None and self.profile is not None:
            est = self.profile.estimate(limit)
            slack = 0.0 if est is None else max(target - 2 * est, 0.0)
            delay = slack if delay is None else min(delay, slack)
        return delay

    def _plan(self, now: float, limit: int) -> tuple[list[Pending], list[Pending], int]:
        """Walk the queue from the front: the requests that would form the batch, those to
        drop as expired, and the largest preferred size the running total passed through
        (0 when none)."""
        chosen: list[Pending] = []
        expired: list[Pending] = []
        rows = 0
        preferred_cut = 0
        head_key: Hashable | None = None
        for r in self._queue:
            if (r.deadline is not None and r.deadline <= now) or r.abandoned():
                expired.append(r)
                continue
            if not chosen:
                chosen.append(r)
                rows = r.rows
                head_key = r.key
                if r.alone or head_key is None or rows >= limit:
                    break
            elif r.alone or r.key != head_key or rows + r.rows > limit:
                continue
            else:
                chosen.append(r)
                rows += r.rows
            if rows in self._preferred:
                preferred_cut = len(chosen)
            if rows >= limit:
                break
        return chosen, expired, preferred_cut

    def due_in(self, now: float | None = None, *, coming: int | None = None) -> float | None:
        """Seconds until ``take`` would hand out a batch: 0 = now, None = nothing queued.
        ``coming``: how many more requests may still join (None: unknown)."""
        if not self._queue:
            return None
        now = self.clock() if now is None else now
        limit = self.limit()
        chosen, expired, preferred_cut = self._plan(now, limit)
        if not chosen:
            return 0.0 if expired else None
        return self._wait_s(chosen, preferred_cut, now, limit, coming)

    def _wait_s(self, chosen: list[Pending], preferred_cut: int, now: float, limit: int,
                coming: int | None) -> float:
        head = chosen[0]
        if head.alone or head.key is None or preferred_cut or sum(r.rows for r in chosen) >= limit:
            return 0.0
        delay = self._delay_s(limit)
        if delay is None or coming == 0:
            return 0.0
        return max(head.enqueued + delay - now, 0.0)

    def take(self, now: float | None = None, *, full_only: bool = False,
             coming: int | None = None) -> Batch:
        """Remove and return the batch that is due now (empty ``requests`` when none is due
        yet), plus every expired or abandoned request met on the way. ``full_only``: hand
        out only a batch that reached the limit (to queue it behind a running one).
        ``coming``: how many more requests may still join; 0 = nobody, so a batch is due now
        (None: unknown, wait as configured)."""
        now = self.clock() if now is None else now
        batch = Batch()
        if not self._queue:
            return batch
        limit = self.limit()
        chosen, expired, preferred_cut = self._plan(now, limit)
        batch.expired = expired
        rows = sum(r.rows for r in chosen)
        if full_only and rows < limit and not (chosen and (chosen[0].alone or chosen[0].key is None)):
            chosen = []
        if chosen and self._wait_s(chosen, preferred_cut, now, limit, coming) == 0.0:
            if (preferred_cut and rows < limit and coming != 0
                    and not self._timed_out(chosen[0], now, limit)):
                chosen = chosen[:preferred_cut]
            batch.requests = chosen
        taken = batch.requests
        if expired or taken:
            q = self._queue
            if not expired and all(q[i] is r for i, r in enumerate(taken)):
                for _ in taken:  # the usual case: the batch is the front of the queue
                    q.popleft()
            else:
                gone = {id(r) for r in expired} | {id(r) for r in taken}
                self._queue = deque(r for r in q if id(r) not in gone)
        return batch

    def _timed_out(self, head: Pending, now: float, limit: int) -> bool:
        delay = self._delay_s(limit)
        return delay is None or now >= head.enqueued + delay

    def retry_after_s(self, items_per_s: float) -> float:
        """A hint for ``Overloaded``: how long the queue takes to drain at the measured rate."""
        if items_per_s <= 0:
            return 1.0
        return max(min(self.rows / items_per_s, 60.0), 0.001)
