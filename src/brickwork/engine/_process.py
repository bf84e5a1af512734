"""Process replicas: a stage's brick in a spawned worker process, fed through shared memory.

The engine side of one worker: it spawns the process (``multiprocessing`` spawn context), owns
its two arenas (:mod:`._shm`), writes each batch's inputs straight into the request arena (the
concatenation of the batch's requests *is* the copy into shared memory), and copies the outputs
out of the arenas when the answer arrives. Both the control pipe and the process sentinel are
watched by the event loop, so a dead worker is noticed at once: its batch fails with
``WorkerCrashed`` (the stage retries it) and a new worker is spawned. The arenas belong to
this process, which unlinks them on stop, so a killed worker leaves nothing in /dev/shm.

Pipelining: a worker holds up to two batches, each in its own pair of arenas (a *slot*):
while it computes one, the next waits in its pipe, already written into shared memory, so the
worker never idles while the event loop answers the previous batch's callers. When a worker
dies, the batch it was computing fails with ``WorkerCrashed``; the one queued behind it never
started, and its requests go back to the stage's queue without counting as an attempt.

Hung workers: the engine times the batch a worker is computing (the oldest it holds). A batch still running after
``hang_after_s`` (the stage's ``timeout_s`` when it has one, else its ``health_timeout_s``)
means the worker is stuck (a deadlock, an endless loop, a call that never returns): it is
killed with SIGKILL by its pid and handled like any other death: its batch fails with
``WorkerCrashed`` (its callers have timed out already when ``timeout_s`` is set) and a new worker
is spawned, which loads and warms its brick before it takes a batch.

Heartbeats: while a worker holds no batch the engine pings it every ``min(1 s,
health_timeout_s / 2)``; a worker that leaves a ping unanswered for ``health_timeout_s`` (frozen,
stopped, wedged in a native call while idle) is killed and replaced the same way, so it is not
found only when the next request reaches it. ``restarts`` and ``hangs``
are counted per replica.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..bricks import kind_module
from ..errors import ConfigError, WorkerCrashed
from ..plan import StagePlan
from ..spec import Tensors
from ._replicas import RunResult
from ._shm import Arena, TensorRef, layout
from ._worker import (
    BatchDone,
    BatchFailed,
    Ping,
    Pong,
    RunBatch,
    Shutdown,
    WorkerFailed,
    WorkerReady,
    WorkerStart,
    worker_main,
)

__all__ = ["ProcessReplica"]

DEFAULT_ARENA_BYTES = 4 << 20
_RESTART_BACKOFF_S = (0.05, 0.5, 2.0)

log = logging.getLogger("brickwork.engine")


class _Slot:
    """One batch's shared memory: the request arena the engine writes, the response arena the
    worker writes."""

    __slots__ = ("inp", "out")

    def __init__(self, arena_bytes: int) -> None:
        self.inp = Arena(arena_bytes, "in")
        self.out = Arena(arena_bytes, "out")

    def grow(self, which: str, need: int) -> None:
        old = self.inp if which == "in" else self.out
        new = Arena(max(need, 2 * old.size), which)
        if which == "in":
            self.inp = new
        else:
            self.out = new
        old.release()

    def release(self) -> None:
        self.inp.release()
        self.out.release()


def _release_slots(slots: list[_Slot]) -> None:
    for slot in slots:
        slot.release()


class ProcessReplica:
    """One worker process of a stage. ``on_change`` is called when it dies or comes back."""

    capacity = 2  # one batch computing, one waiting in the worker's pipe

    def __init__(self, stage: StagePlan, index: int = 0, *, arena_bytes: int = DEFAULT_ARENA_BYTES,
                 start_timeout_s: float = 120.0) -> None:
        spec_of = getattr(stage.brick, "spec", None)
        if spec_of is None:
            raise ConfigError(f"brick {stage.name!r} has no spec(); it cannot run in a worker process. "
                              "Use worker='thread'")
        self.spec = spec_of()
        self.stage = stage
        self.index = index
        self.inflight = 0
        self.batches = 0
        self.restarts = 0
        self.restarting = False
        self.on_change: Callable[[], None] = lambda: None
        self.start_timeout_s = start_timeout_s
        policy = stage.options.policy
        self.hang_after_s: float | None = policy.timeout_s or policy.health_timeout_s
        self.health_timeout_s = policy.health_timeout_s
        self.heartbeat_s = None if self.health_timeout_s is None else min(1.0, self.health_timeout_s / 2)
        self._beat: asyncio.TimerHandle | None = None
        self._ping_sent: float | None = None  # when the unanswered ping went out
        self.hangs = 0
        self.deaths = 0
        self.down_since: float | None = None  # monotonic time of the last death, until back
        self.last_downtime_s: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._hung: str | None = None  # why the current process is being killed as hung
        self._slots = [_Slot(arena_bytes) for _ in range(self.capacity)]
        self._free = list(range(self.capacity))
        self._finalizer = weakref.finalize(self, _release_slots, self._slots)
        self._proc: Any = None
        self._conn: Any = None
        self._ready = False
        self._stopping = False
        self._started = False
        self._ready_fut: asyncio.Future[None] | None = None
        # batches the worker holds, oldest first: seq -> (future, byte counts, slot index)
        self._pending: dict[int, tuple[asyncio.Future[RunResult], dict[str, int], int]] = {}
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._restart_task: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        return self._ready and not self._stopping

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def info(self) -> dict[str, Any]:
        return {"index": self.index, "kind": "process", "pid": self.pid, "alive": self.alive,
                "restarts": self.restarts, "hangs": self.hangs, "deaths": self.deaths,
                "last_downtime_s": self.last_downtime_s, "batches": self.batches,
                "arena_bytes": {"in": sum(s.inp.size for s in self._slots),
                                "out": sum(s.out.size for s in self._slots)}}

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self._spawn()
        self._started = True

    async def _spawn(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        start = WorkerStart(self.stage.name, self.index, self.spec, self.stage.options.device,
                            kind_module(self.spec.kind))
        proc = ctx.Process(target=worker_main, args=(start, child), daemon=True,
                           name=f"bw-{self.stage.name}-{self.index}")
        await loop.run_in_executor(None, proc.start)
        child.close()
        self._proc, self._conn = proc, parent
        self._ready_fut = loop.create_future()
        loop.add_reader(parent.fileno(), self._on_message, proc, parent)
        loop.add_reader(proc.sentinel, self._on_exit, proc, parent)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready_fut), self.start_timeout_s)
        except BaseException:
            self._kill(proc, parent)
            raise
        self._ready = True
        self._ping_sent = None
        self._arm_heartbeat()
        if self.down_since is not None:
            self.last_downtime_s = time.monotonic() - self.down_since
            self.down_since = None

    async def stop(self) -> None:
        self._stopping = True
        self._ready = False
        self._stop_heartbeat()
        proc, conn = self._proc, self._conn
        if proc is not None:
            self._unwatch(proc, conn)
            try:
                conn.send(Shutdown())
            except (OSError, ValueError):
                pass
            await asyncio.get_running_loop().run_in_executor(None, proc.join, 3.0)
            self._kill(proc, conn)
        self._fail_pending(WorkerCrashed(f"stage {self.stage.name!r} worker stopped"))
        self._finalizer()

    def _unwatch(self, proc: Any, conn: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for fd in (proc.sentinel, conn.fileno() if not conn.closed else None):
            if fd is not None:
                loop.remove_reader(fd)

    def _kill(self, proc: Any, conn: Any) -> None:
        """Make sure the process is gone and reaped (by its PID, via Process.kill)."""
        self._unwatch(proc, conn)
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)
        if not conn.closed:
            conn.close()

    # -- the hot path ------------------------------------------------------------------
    def run(self, parts: Sequence[Tensors], wanted: Callable[[], bool] | None = None,
            ) -> asyncio.Future[RunResult]:
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[RunResult] = loop.create_future()
        if not self.alive:
            fut.set_exception(WorkerCrashed(f"stage {self.stage.name!r} worker {self.index} is not running"))
            return fut
        if not self._free:  # the stage dispatches at most ``capacity`` batches; this is a bug guard
            fut.set_exception(WorkerCrashed(f"stage {self.stage.name!r} worker {self.index} already holds "
                                            f"{self.capacity} batches"))
            return fut
        index = self._free.pop()
        slot = self._slots[index]
        self.batches += 1
        specs: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}
        pickled: dict[str, np.ndarray] = {}
        first = parts[0]
        rows = sum(int(next(iter(p.values())).shape[0]) for p in parts) if first else 0
        for name, value in first.items():
            if value.dtype.hasobject:
                pickled[name] = value if len(parts) == 1 else np.concatenate([p[name] for p in parts])
            else:
                specs[name] = (value.dtype, (rows, *value.shape[1:]) if len(parts) > 1 else value.shape)
        offsets, need = layout(specs)
        if need > slot.inp.size:
            slot.grow("in", need)
        refs = []
        copied = 0
        for name, (dtype, shape) in specs.items():
            dst = slot.inp.array(dtype, shape, offsets[name])
            if len(parts) == 1:
                np.copyto(dst, first[name], casting="no")
            else:  # the batch's concatenation is the one copy into shared memory
                np.concatenate([p[name] for p in parts], axis=0, out=dst, casting="no")
            copied += dst.nbytes
            del dst
            refs.append(TensorRef(name, dtype.str, tuple(shape), offsets[name], "in"))
        self._seq += 1
        counts = {"shm_in": copied, "pickled": sum(int(v.nbytes) for v in pickled.values())}
        self._pending[self._seq] = (fut, counts, index)
        if len(self._pending) == 1:
            self._watch(self._seq)
        try:
            self._conn.send(RunBatch(self._seq, slot.inp.name, slot.out.name, tuple(refs), pickled))
        except (OSError, ValueError):
            self._on_exit(self._proc, self._conn)
        return fut

    def _watch(self, seq: int) -> None:
        """Time batch ``seq``, which the worker starts computing now."""
        self._disarm()
        if self.hang_after_s is not None and self._loop is not None:
            self._watchdog = self._loop.call_later(self.hang_after_s, self._on_hang, seq)

    def _on_hang(self, seq: int) -> None:
        """The batch ``seq`` ran past ``hang_after_s``: the worker is stuck; kill it by pid."""
        if seq not in self._pending or self._proc is None:
            return
        self.hangs += 1
        self._hung = (f"hung: its batch ran past {self.hang_after_s:g} s "
                      f"({'timeout_s' if self.stage.options.policy.timeout_s else 'health_timeout_s'}), "
                      "so it was killed and is being replaced")
        self._on_exit(self._proc, self._conn)

    # -- heartbeats -------------------------------------------------------------------
    def _arm_heartbeat(self) -> None:
        if self.heartbeat_s is not None and self._loop is not None and not self._stopping:
            self._beat = self._loop.call_later(self.heartbeat_s, self._heartbeat)

    def _stop_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    def _heartbeat(self) -> None:
        self._beat = None
        proc, conn = self._proc, self._conn
        if not self.alive or proc is None:
            return
        if self._pending:  # busy: the batch watchdog times it
            self._ping_sent = None
        elif self._ping_sent is None:
            try:
                conn.send(Ping(self._seq))
            except (OSError, ValueError):
                self._on_exit(proc, conn)
                return
            self._ping_sent = time.monotonic()
        elif self.health_timeout_s is not None and time.monotonic() - self._ping_sent > self.health_timeout_s:
            self.hangs += 1
            self._hung = (f"stopped answering heartbeats for {self.health_timeout_s:g} s while idle "
                          "(health_timeout_s), so it was killed and is being replaced")
            self._on_exit(proc, conn)
            return
        self._arm_heartbeat()

    def _on_message(self, proc: Any, conn: Any) -> None:
        self._ping_sent = None  # any message shows the worker's loop is answering
        try:
            while conn.poll():
                self._handle(conn.recv())
        except (EOFError, OSError):
            self._on_exit(proc, conn)

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, Pong):
            return
        if isinstance(msg, WorkerReady | WorkerFailed):
            fut = self._ready_fut
            if fut is not None and not fut.done():
                if isinstance(msg, WorkerReady):
                    fut.set_result(None)
                else:
                    fut.set_exception(ConfigError(msg.message))
            return
        pending = self._pending.pop(msg.seq, None)
        if pending is None:
            return  # an answer to a batch that was already given up
        batch, counts, index = pending
        if self._pending:  # the worker answers in order: the next batch it holds starts now
            self._watch(next(iter(self._pending)))
        else:
            self._disarm()
        slot = self._slots[index]
        try:
            if isinstance(msg, BatchFailed):
                if not batch.done():
                    batch.set_exception(msg.error)
                return
            assert isinstance(msg, BatchDone)
            out: Tensors = {}
            copied_out = 0
            for ref in msg.outputs:
                arena = slot.inp if ref.arena == "in" else slot.out
                out[ref.name] = arena.view(ref).copy()
                copied_out += ref.nbytes
            out.update(msg.pickled)
            counts = {**counts, "shm_out": copied_out + msg.copied,
                      "pickled": counts["pickled"] + sum(int(v.nbytes) for v in msg.pickled.values())}
            if msg.out_needed > slot.out.size:
                slot.grow("out", msg.out_needed)
        finally:
            self._free.append(index)
        if not batch.done():
            batch.set_result(RunResult(out, msg.compute_s, {k: v for k, v in counts.items() if v}))

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _fail_pending(self, exc: WorkerCrashed) -> None:
        """Fail every batch the worker held: the one it was computing with ``exc``; those
        queued behind it never started, so they fail with ``WorkerCrashed(started=False)``
        (the stage requeues their requests without counting an attempt)."""
        self._disarm()
        pending, self._pending = self._pending, {}
        self._free = list(range(self.capacity))
        for i, (fut, _, _) in enumerate(pending.values()):
            if not fut.done():
                fut.set_exception(exc if i == 0 else WorkerCrashed(
                    f"{exc} (this batch was queued behind the failed one)", started=False))

    def _on_exit(self, proc: Any, conn: Any) -> None:
        """The worker's sentinel fired (or its pipe broke): it is dead."""
        if proc is not self._proc:
            return
        self._stop_heartbeat()
        self._kill(proc, conn)
        self._proc = None
        self._ready = False
        self.deaths += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
        hung, self._hung = self._hung, None
        code = proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        what = hung if hung is not None else f"died ({how})"
        err = WorkerCrashed(f"stage {self.stage.name!r} worker {self.index} (pid {proc.pid}) {what}")
        if not self._stopping:
            log.warning("%s; replacing it", err.message)
        fut = self._ready_fut
        if fut is not None and not fut.done():
            fut.set_exception(err)
        self._fail_pending(err)
        if self._started and not self._stopping and not self.restarting:
            self.restarting = True
            self._restart_task = asyncio.ensure_future(self._restart())
        self.on_change()

    async def _restart(self) -> None:
        try:
            for delay in _RESTART_BACKOFF_S:
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                try:
                    await self._spawn()
                except Exception as exc:
                    log.error("stage %r worker %d: its replacement failed to start: %r",
                              self.stage.name, self.index, exc)
                    continue
                self.restarts += 1
                log.info("stage %r worker %d replaced (restart %d)", self.stage.name, self.index, self.restarts)
                return
        finally:
            self.restarting = False
            if not self._stopping:
                self.on_change()
