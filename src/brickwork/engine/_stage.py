"""A running stage: one bounded :class:`~brickwork.batching.BatchQueue` in front of replicas.

``submit`` queues the request and *pumps*: while a replica is free and a batch is due, the
batch goes to the least-loaded live replica; a completed batch pumps again; a batch that is not
due yet arms one timer. A batch that is not full waits for company (``max_delay_s``) only while
other requests are on their way to this stage: the executor tells the stage how many requests
in flight have not reached it yet (:meth:`Stage.expect_from`); when none has, a free replica
takes what is queued at once, so light traffic pays no batching delay. There is no dispatcher
task, so an in-process hop costs one future. An ``inline`` stage without ``max_delay_s`` that
is idle with nothing queued runs the request right away (a batch is whatever is queued when the
brick is free).

Failures: when a merged batch raises a request error (the model's fault), its requests are run
again one by one so only the culprit fails. When a worker dies holding a batch
(``WorkerCrashed``), each request of it is retried once, alone, on whichever replica is free
next (another one, or the restarted one); a request that crashes a worker twice fails with
``WorkerCrashed(poison=True)``, whose message says so, and nothing retries it again. A worker
stuck in a batch is killed and replaced by its replica (see ``_process.py``); to the stage that
is one more death.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import tracing as _tracing
from ..batching import BatchQueue, LatencyProfile, Pending, batch_key, rows_of
from ..errors import DeadlineExceeded, ModelError, RequestError, WorkerCrashed
from ..plan import StagePlan
from ..spec import Tensors
from ._replicas import InlineReplica, Replica, RunResult, split
from ._stats import StageStats

__all__ = ["Stage"]


class Stage:
    """Implements the executor's ``StageRunner`` for one stage of a plan."""

    def __init__(self, plan: StagePlan, replicas: Sequence[Replica]) -> None:
        self.name = plan.name
        self.plan = plan
        self.replicas = list(replicas)
        batching = plan.batching
        self.batching = batching
        self.rowwise = bool(getattr(plan.brick, "rowwise", True))
        profile = LatencyProfile(batching.max_batch_size) if batching.target_latency_s else None
        self.queue = BatchQueue(batching, rowwise=self.rowwise, profile=profile)
        self.profile = profile
        self.max_batch_size = batching.max_batch_size
        self.stats_ = StageStats(len(self.replicas))
        self._inline = (
            self.replicas[0]
            if len(self.replicas) == 1 and isinstance(self.replicas[0], InlineReplica)
            and batching.max_delay_s is None and profile is None
            else None
        )
        self.scaler: Any = None  # the stage's Autoscaler, when its replicas follow the load
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._pumping = False
        self._pump_soon = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._coming: Callable[[], int] | None = None
        for r in self.replicas:
            if hasattr(r, "on_change"):
                r.on_change = self._pump  # a worker died or came back: dispatch again

    # -- StageRunner -------------------------------------------------------------------
    async def submit(self, inputs: Tensors, deadline: float | None) -> Tensors:
        out = self.start_nowait(inputs, deadline)
        if not isinstance(out, asyncio.Future):  # it ran inline at once
            return out
        if deadline is None:  # no timer to arm: skip a coroutine frame per request
            return await out
        return await self._wait(out, deadline, out.get_loop())

    def start_nowait(self, inputs: Tensors, deadline: float | None) -> Tensors | asyncio.Future[Tensors]:
        """``submit`` without the coroutine: the outputs when the request ran inline at once,
        else the future of its queued run. The caller arms ``deadline``'s timer (``submit``
        does); the server's hot path calls this only without a deadline."""
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            self.stats_.error("DeadlineExceeded")
            raise DeadlineExceeded(f"deadline passed before stage {self.name!r}")
        if self._closed:
            raise WorkerCrashed(f"stage {self.name!r} is shut down")
        rows = rows_of(inputs)
        inline = self._inline
        if inline is not None and inline.inflight == 0 and not self.queue and _tracing.TRACER is None:
            return self._run_inline_now(inline, inputs, rows)
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        fut: asyncio.Future[Tensors] = loop.create_future()
        ctx = None if _tracing.TRACER is None else _tracing.current()
        pending = Pending(inputs, rows, now, deadline, batch_key(inputs), False, 0, fut, ctx)
        if not self.queue.put_one(pending):  # full: pump, then queue or refuse with a hint
            self._enqueue([pending])
        if not self._pump_soon:  # pump once this loop tick's other callers have queued too
            self._pump_soon = True
            loop.call_soon(self._pump_later)
        return fut

    def stats(self) -> Mapping[str, Any]:
        extra: dict[str, Any] = {
            "worker": self.replicas[0].info()["kind"] if self.replicas else self.plan.worker,
            "device": self.plan.options.device,
            "replica_info": [r.info() for r in self.replicas],
            # self-healing: workers restarted after a death, and workers killed as hung
            "restarts": sum(getattr(r, "restarts", 0) for r in self.replicas),
            "hangs": sum(getattr(r, "hangs", 0) for r in self.replicas),
        }
        if self.scaler is not None:
            extra["autoscale"] = self.scaler.info()
        if self.profile is not None:
            extra["latency_profile_s"] = self.profile.measured
            extra["latency_limit"] = self.queue.limit()
        return self.stats_.snapshot(live_replicas=self.live_replicas(), queued=len(self.queue), extra=extra)

    def reset_stats(self) -> None:
        self.stats_.reset()

    def expect_from(self, coming: Callable[[], int]) -> None:
        """``coming()``: how many requests in flight may still reach this stage (the executor
        counts them). Without it the stage waits out ``max_delay_s`` whatever the traffic."""
        self._coming = coming

    def live_replicas(self) -> int:
        return sum(1 for r in self.replicas if r.alive)

    def add_replica(self, replica: Replica) -> None:
        """A started replica joins the stage (autoscaling) and takes work at once."""
        if hasattr(replica, "on_change"):
            replica.on_change = self._pump
        self.replicas.append(replica)
        self.stats_.replicas = len(self.replicas)
        self._inline = None
        self._pump()

    def remove_idle_replica(self) -> Replica | None:
        """Take the newest replica that holds no batch out of the stage (the caller stops it);
        None when every replica but the first is busy. The first is never removed."""
        for replica in reversed(self.replicas[1:]):
            if replica.inflight == 0:
                self.replicas.remove(replica)
                self.stats_.replicas = len(self.replicas)
                return replica
        return None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.gather(*(r.start() for r in self.replicas))
        self.stats_.reset()

    async def stop(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._fail(self.queue.drain(), WorkerCrashed(f"stage {self.name!r} shut down"))
        await asyncio.gather(*(r.stop() for r in self.replicas), return_exceptions=True)

    # -- queueing ----------------------------------------------------------------------
    def _run_inline_now(self, inline: InlineReplica, inputs: Tensors, rows: int) -> Tensors:
        inline.inflight = 1
        t0 = time.perf_counter()
        try:
            result = inline.run_now((inputs,))
        except RequestError as exc:
            self.stats_.error(type(exc).__name__)
            raise
        finally:
            inline.inflight = 0
        self.stats_.batch(rows, 1, result.compute_s, time.perf_counter() - t0)
        self.stats_.waited(0.0)
        if self.queue:
            self._pump()
        return result.outputs

    def _enqueue(self, pending: list[Pending]) -> None:
        retry = 1.0
        if len(self.queue) + len(pending) > self.batching.max_queue_size:
            self._pump()  # dispatch what can run now before refusing anyone
            retry = self.queue.retry_after_s(self.stats_.items_per_s())
        try:
            self.queue.put_all(pending, retry_after_s=retry)
        except RequestError as exc:
            self.stats_.error(type(exc).__name__)
            raise

    def _pump_later(self) -> None:
        self._pump_soon = False
        self._pump()

    async def _wait(self, fut: asyncio.Future[Tensors], deadline: float | None,
                    loop: asyncio.AbstractEventLoop) -> Tensors:
        if deadline is None:
            return await fut
        handle = loop.call_at(loop.time() + (deadline - time.monotonic()), self._expire, fut)
        try:
            return await fut
        finally:
            handle.cancel()

    def _expire(self, fut: asyncio.Future[Tensors]) -> None:
        if not fut.done():
            self.stats_.error("DeadlineExceeded")
            fut.set_exception(DeadlineExceeded(f"deadline passed while in stage {self.name!r}"))

    # -- dispatch ----------------------------------------------------------------------
    def _free_replica(self) -> Replica | None:
        best: Replica | None = None
        for r in self.replicas:
            if r.alive and r.inflight < r.capacity and (
                    best is None or r.inflight < best.inflight
                    # equally busy: the one that started work last (not one stuck in a stall,
                    # where a hedged copy would queue behind the call it hedges)
                    or (r.inflight and r.inflight == best.inflight
                        and getattr(r, "started", 0.0) > getattr(best, "started", 0.0))):
                best = r
        return best

    def _pump(self) -> None:
        if self._pumping or self._closed:
            return
        self._pumping = True
        try:
            while self.queue:
                replica = self._free_replica()
                if replica is None:
                    if not any(r.alive or getattr(r, "restarting", False) for r in self.replicas):
                        self._fail(self.queue.drain(), WorkerCrashed(
                            f"stage {self.name!r} has no live replica (its workers keep dying)"))
                    return
                now = time.monotonic()
                # only a full batch may queue behind a running one: the others wait for it and
                # grow meanwhile. Ray actors too: sending them each partial batch made batches
                # of 1-2 over HTTP (each an actor call, ~0.5 ms of ingress CPU), 440 req/s on
                # the 2-stage pipeline against 690-1,880 with this rule (batches of 3-9)
                busy = replica.inflight > 0
                coming = None if self._coming is None else self._coming()
                batch = self.queue.take(now, full_only=busy, coming=coming)
                if batch.expired:
                    self._fail(batch.expired, DeadlineExceeded(
                        f"deadline passed while queued in stage {self.name!r}"))
                if not batch.requests and busy:
                    return
                if not batch.requests:
                    due = self.queue.due_in(now, coming=coming)
                    if due is None or due > 0:
                        if due is not None:
                            self._arm(now + due)
                        return
                    continue
                self._launch(replica, batch.requests, now)
        finally:
            self._pumping = False

    def _arm(self, at: float) -> None:
        if self._timer is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._timer_at = at
        self._timer = loop.call_at(loop.time() + (at - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def _launch(self, replica: Replica, requests: list[Pending], now: float, traced: bool = False) -> None:
        if _tracing.TRACER is not None and not traced:
            self._launch_traced(replica, requests, now)
            return
        self.stats_.waited_all([now - r.enqueued for r in requests])
        replica.inflight += 1
        replica.started = now  # type: ignore[attr-defined]  # read by _free_replica on ties
        t0 = time.perf_counter()
        parts = [r.inputs for r in requests]
        if isinstance(replica, InlineReplica):
            try:
                result = replica.run_now(parts)
            except BaseException as exc:
                self._finished(replica, requests, t0, None, exc)
            else:
                self._finished(replica, requests, t0, result, None)
            return
        def wanted() -> bool:  # read from the replica's thread just before compute
            t = time.monotonic()
            return any(not r.waiter.done() and (r.deadline is None or r.deadline > t) for r in requests)

        try:
            fut = replica.run(parts, wanted)
        except BaseException as exc:
            self._finished(replica, requests, t0, None, exc)
            return
        fut.add_done_callback(lambda f: self._finished(
            replica, requests, t0, None if f.cancelled() or f.exception() else f.result(),
            WorkerCrashed(f"stage {self.name!r}: batch cancelled") if f.cancelled() else f.exception()))

    def _launch_traced(self, replica: Replica, requests: list[Pending], now: float) -> None:
        """``_launch`` inside a span for the batch (tracing on): the replica's call, and a remote
        brick's request upstream, run in its context."""
        kind = type(replica).__name__
        span, token = _tracing.batch_span(self.name, [r.trace for r in requests], sum(r.rows for r in requests),
                                          kind)
        waiters = [r.waiter for r in requests if r.waiter is not None]
        try:
            self._launch(replica, requests, now, traced=True)
        finally:
            _tracing.detach(token)
        pending = [w for w in waiters if not w.done()]
        if not pending:
            _tracing.end_batch(span, _first_error(waiters))
            return
        left = [len(pending)]

        def done(fut: Any) -> None:
            left[0] -= 1
            if not left[0]:
                _tracing.end_batch(span, _first_error(waiters))

        for w in pending:
            w.add_done_callback(done)

    def _finished(self, replica: Replica, requests: list[Pending], t0: float,
                  result: RunResult | None, exc: BaseException | None) -> None:
        replica.inflight -= 1
        busy = time.perf_counter() - t0
        rows = [r.rows for r in requests]
        if result is not None:
            for kind, n in result.copied.items():
                self.stats_.copy(kind, n)
            try:
                outs = split(result.outputs, rows, self.name)
            except RequestError as err:
                exc = err
            else:
                self.stats_.batch(sum(rows), len(requests), result.compute_s, busy)
                if self.profile is not None:
                    self.profile.record(sum(rows), result.compute_s)
                for r, out in zip(requests, outs, strict=True):
                    waiter = r.waiter
                    if not waiter.done():
                        waiter.set_result(out)
        if exc is not None:
            self.stats_.busy_s += busy
            self._failed(requests, exc)
        self._pump()

    def _failed(self, requests: list[Pending], exc: BaseException) -> None:
        if isinstance(exc, WorkerCrashed):
            if self._closed:
                self._fail(requests, exc)
                return
            if not exc.started:  # queued behind the crash: it never ran, so no attempt
                self.queue.requeue([r for r in requests if not r.abandoned()])
                return
            self.stats_.crashes += 1
            twice = [r for r in requests if r.attempts > 0]
            again = [r for r in requests if r.attempts == 0 and not r.abandoned()]
            for r in again:
                r.attempts += 1
                r.alone = len(requests) > 1  # isolate a poison request from its neighbours
            self.stats_.retries += len(again)
            if twice:
                self._fail(twice, WorkerCrashed(
                    f"{exc}; this request took down a worker twice (with its batch, then alone), "
                    "so it is not retried again: a poison request, check its input", poison=True))
            if again:
                self.queue.requeue(again)
            return
        if not isinstance(exc, RequestError):
            err: RequestError = ModelError(f"stage {self.name!r} failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            exc = err
        assert isinstance(exc, RequestError)
        if len(requests) > 1 and not exc.is_machinery:
            for r in requests:  # one bad item fails only itself: run them one by one
                r.alone = True
            self.stats_.retries += len(requests)
            self.queue.requeue(requests)
            return
        self._fail(requests, exc)

    def _fail(self, requests: list[Pending], exc: BaseException) -> None:
        failed = 0
        for r in requests:
            if r.waiter is not None and not r.waiter.done():
                r.waiter.set_exception(exc)
                failed += 1
        if failed:
            self.stats_.error(type(exc).__name__, failed)


def _first_error(waiters: list[Any]) -> BaseException | None:
    return next((w.exception() for w in waiters if w.done() and not w.cancelled() and w.exception()), None)
