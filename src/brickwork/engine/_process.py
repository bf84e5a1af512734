"""Process replicas: a stage's brick in a spawned worker process, fed through shared memory.

The engine side of one worker: it spawns the process (``multiprocessing`` spawn context), owns
its arenas (:mod:`._shm`), writes each batch's inputs straight into the request arena (the
concatenation of the batch's requests *is* the copy into shared memory), and copies the outputs
out of the arenas when the answer arrives. Messages travel through :class:`~._pipe.WorkerPipe`
(non-blocking, any size); the process sentinel is watched by the event loop too, so a dead
worker is noticed at once: its batch fails with ``WorkerCrashed`` (the stage retries it). The
arenas belong to this process, which unlinks them on stop, so a killed worker leaves nothing
in /dev/shm.

Pipelining: a worker holds up to two batches, each in its own pair of arenas (a *slot*):
while it computes one, the next waits in its pipe, already written into shared memory, so the
worker never idles while the event loop answers the previous batch's callers. When a worker
dies, the batch it was computing fails with ``WorkerCrashed``; the one queued behind it never
started, and its requests go back to the stage's queue without counting as an attempt.

Supervision (the watchdog on a batch past ``timeout_s``/``health_timeout_s``, heartbeats while
idle, kill by pid, reaping off the loop, respawn with backoff for as long as the server runs)
is :class:`brickwork.faults.Supervisor`'s; this class is the :class:`~brickwork.faults.Supervised`
it drives.
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
from ..faults import SupervisedFigures, Supervisor, kill_and_reap
from ..plan import StagePlan
from ..spec import Tensors
from ._messages import (
    BatchDone,
    BatchFailed,
    Forget,
    Ping,
    Pong,
    RunBatch,
    Shutdown,
    WorkerFailed,
    WorkerReady,
    WorkerStart,
)
from ._pipe import WorkerPipe
from ._replicas import RunResult
from ._shm import Arena, NoSharedMemory, TensorRef, layout
from ._worker import worker_main

__all__ = ["ProcessReplica"]

DEFAULT_ARENA_BYTES = 4 << 20
ARENA_IDLE_S = 30.0  # an arena unused this long is released (made again on the next batch)

log = logging.getLogger("brickwork.engine")


class _Slot:
    """One batch's shared memory: the request arena the engine writes, the response arena the
    worker writes. Arenas are made on first use (a replica that never sees a batch maps
    nothing), grown on demand, and released after ``arena_idle_s`` without a batch. When
    /dev/shm has no room an arena stays missing and that batch's tensors travel through the
    pipe instead."""

    __slots__ = ("inp", "out", "out_want", "retired", "used_at")

    def __init__(self, arena_bytes: int) -> None:
        self.inp: Arena | None = None
        self.out: Arena | None = None
        self.out_want = arena_bytes  # the response arena's size the last batch asked for
        self.retired: list[str] = []  # replaced arenas the worker may still map
        self.used_at = 0.0

    def ensure(self, which: str, need: int, floor: int) -> Arena | None:
        """The ``which`` ("in"/"out") arena with at least ``need`` bytes, or None when shared
        memory has no room for it (the batch then goes through the pipe)."""
        old = self.inp if which == "in" else self.out
        if old is not None and old.size >= need:
            return old
        size = max(need, floor, 2 * old.size if old is not None else 0)
        try:
            new = Arena(size, which)
        except NoSharedMemory as first:
            if size == need:
                _no_room(first)
                return None
            try:
                new = Arena(need, which)
            except NoSharedMemory as exc:
                _no_room(exc)
                return None
        if which == "in":
            self.inp = new
        else:
            self.out = new
        if old is not None:
            self.retired.append(old.name)
            old.release()
        return new

    def sizes(self) -> tuple[int, int]:
        return (self.inp.size if self.inp else 0, self.out.size if self.out else 0)

    def names(self) -> list[str]:
        return [a.name for a in (self.inp, self.out) if a is not None]

    def release(self) -> None:
        for arena in (self.inp, self.out):
            if arena is not None:
                arena.release()
        self.inp = self.out = None


_warned_at = -1e9


def _no_room(exc: NoSharedMemory) -> None:
    """Say that /dev/shm is full at most once a minute (not once per batch)."""
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= 60.0:
        _warned_at = now
        log.warning("%s; batches go through the worker pipe instead until there is room "
                    "(give the container a larger /dev/shm)", exc)


def _release_slots(slots: list[_Slot]) -> None:
    for slot in slots:
        slot.release()


class ProcessReplica(SupervisedFigures):
    """One worker process of a stage. ``on_change`` is called when it dies or comes back."""

    capacity = 2  # one batch computing, one waiting in the worker's pipe

    def __init__(self, stage: StagePlan, index: int = 0, *, arena_bytes: int = DEFAULT_ARENA_BYTES,
                 arena_idle_s: float = ARENA_IDLE_S, start_timeout_s: float = 120.0) -> None:
        spec_of = getattr(stage.brick, "spec", None)
        if spec_of is None:
            raise ConfigError(f"brick {stage.name!r} has no spec(); it cannot run in a worker process. "
                              "Use worker='thread'")
        self.spec = spec_of()
        self.stage = stage
        self.index = index
        self.label = f"stage {stage.name!r} worker {index}"
        self.inflight = 0
        self.batches = 0
        self.on_change: Callable[[], None] = lambda: None
        self.start_timeout_s = start_timeout_s
        policy = stage.options.policy
        self.supervisor = Supervisor(
            self, hang_after_s=policy.timeout_s or policy.health_timeout_s,
            hang_setting="timeout_s" if policy.timeout_s else "health_timeout_s",
            health_timeout_s=policy.health_timeout_s)
        self._hung: str | None = None  # why the current process is being killed
        self.arena_bytes = arena_bytes
        self.arena_idle_s = arena_idle_s
        self._trim_timer: asyncio.TimerHandle | None = None
        self._slots = [_Slot(arena_bytes) for _ in range(self.capacity)]
        self._free = list(range(self.capacity))
        self._finalizer = weakref.finalize(self, _release_slots, self._slots)
        self._proc: Any = None
        self._pipe: WorkerPipe | None = None
        self._ready = False
        self._stopping = False
        self._ready_fut: asyncio.Future[None] | None = None
        # batches the worker holds, oldest first: seq -> (future, byte counts, slot index)
        self._pending: dict[int, tuple[asyncio.Future[RunResult], dict[str, int], int]] = {}
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def alive(self) -> bool:
        return self._ready and not self._stopping

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def info(self) -> dict[str, Any]:
        return {"index": self.index, "kind": "process", "pid": self.pid, "alive": self.alive,
                **self.supervisor.info(), "batches": self.batches,
                "arena_bytes": {"in": sum(s.sizes()[0] for s in self._slots),
                                "out": sum(s.sizes()[1] for s in self._slots)}}

    # -- lifecycle (Supervised) -----------------------------------------------------------
    async def start(self) -> None:
        await self.spawn()
        self.supervisor.up()

    async def spawn(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        start = WorkerStart(self.stage.name, self.index, self.spec, self.stage.options.device,
                            kind_module(self.spec.kind))
        proc = ctx.Process(target=worker_main, args=(start, child), daemon=True,
                           name=f"bw-{self.stage.name}-{self.index}")
        try:
            await loop.run_in_executor(None, proc.start)
        except BaseException:
            parent.close()  # under fd or memory pressure: leak nothing, supervision retries
            raise
        finally:
            child.close()
        self._proc = proc
        self._pipe = WorkerPipe(parent, loop, self._handle, lambda: self._on_exit(proc))
        self._ready_fut = loop.create_future()
        loop.add_reader(proc.sentinel, self._on_exit, proc)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready_fut), self.start_timeout_s)
        except BaseException:
            if proc is self._proc:
                self._discard(proc)
            raise
        self._ready = True

    async def stop(self) -> None:
        self._stopping = True
        self._ready = False
        self.supervisor.stop()
        if self._trim_timer is not None:
            self._trim_timer.cancel()
        proc, pipe = self._proc, self._pipe
        if proc is not None and pipe is not None:
            self._unwatch(proc)
            pipe.send(Shutdown())
            await asyncio.get_running_loop().run_in_executor(None, proc.join, 3.0)
            self._discard(proc)
        self._fail_pending(WorkerCrashed(f"{self.label} stopped"))
        self._finalizer()

    def _unwatch(self, proc: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(proc.sentinel)

    def _discard(self, proc: Any) -> None:
        """Stop watching ``proc``, close its pipe, kill it by pid and reap it off the loop."""
        self._unwatch(proc)
        if proc is self._proc and self._pipe is not None:
            self._pipe.close()
        kill_and_reap(proc)

    def kill(self, reason: str) -> None:
        if self._proc is not None:
            self._hung = reason
            self._on_exit(self._proc)

    def ping(self) -> bool:
        return self._pipe is not None and self._pipe.send(Ping(self._seq))

    def busy(self) -> bool:
        return bool(self._pending)

    def changed(self) -> None:
        self.on_change()

    # -- the hot path ------------------------------------------------------------------
    def run(self, parts: Sequence[Tensors], wanted: Callable[[], bool] | None = None,
            ) -> asyncio.Future[RunResult]:
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[RunResult] = loop.create_future()
        if not self.alive or self._pipe is None:
            fut.set_exception(WorkerCrashed(f"{self.label} is not running"))
            return fut
        if not self._free:  # the stage dispatches at most ``capacity`` batches; this is a bug guard
            fut.set_exception(WorkerCrashed(f"{self.label} already holds {self.capacity} batches"))
            return fut
        index = self._free.pop()
        slot = self._slots[index]
        slot.used_at = time.monotonic()
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
        inp = slot.ensure("in", need, self.arena_bytes) if need else None
        out = slot.ensure("out", slot.out_want, self.arena_bytes)
        refs = []
        copied = 0
        for name, (dtype, shape) in specs.items():
            if inp is None:  # no room in /dev/shm: the tensor travels in the message
                pickled[name] = first[name] if len(parts) == 1 else np.concatenate([p[name] for p in parts])
                continue
            dst = inp.array(dtype, shape, offsets[name])
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
            self.supervisor.watch()
        if slot.retired:  # the worker unmaps what it held of the arenas just replaced
            self._pipe.send(Forget(tuple(slot.retired)))
            slot.retired.clear()
        self._pipe.send(RunBatch(self._seq, inp.name if inp is not None else "",
                                 out.name if out is not None else "", tuple(refs), pickled))
        return fut

    def _handle(self, msg: Any) -> None:
        self.supervisor.answered()  # any message shows the worker's loop is answering
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
        oldest = next(iter(self._pending), None)
        if oldest is None or msg.seq != oldest:  # the worker answers in order, or the pipe broke
            self.kill(f"answered batch {msg.seq} while the oldest it holds is {oldest} "
                      "(its pipe is out of step)")
            return
        batch, counts, index = self._pending.pop(oldest)
        if self._pending:  # the worker answers in order: the next batch it holds starts now
            self.supervisor.watch()
        else:
            self.supervisor.disarm()
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
                assert arena is not None  # the worker only refers to arenas it was given
                out[ref.name] = arena.view(ref).copy()
                copied_out += ref.nbytes
            out.update(msg.pickled)
            counts = {**counts, "shm_out": copied_out + msg.copied,
                      "pickled": counts["pickled"] + sum(int(v.nbytes) for v in msg.pickled.values())}
            slot.out_want = max(self.arena_bytes, msg.out_needed)  # the next batch's response arena
        finally:
            self._free.append(index)
            self._arm_trim()
        if not batch.done():
            batch.set_result(RunResult(out, msg.compute_s, {k: v for k, v in counts.items() if v}))

    # -- idle arenas ------------------------------------------------------------------
    def _arm_trim(self) -> None:
        if self._trim_timer is None and self._loop is not None and not self._stopping:
            self._trim_timer = self._loop.call_later(self.arena_idle_s, self._trim)

    def _trim(self) -> None:
        """Release the arenas of slots idle for ``arena_idle_s`` (the worker unmaps them too),
        so a burst of large batches does not hold /dev/shm for good."""
        self._trim_timer = None
        now = time.monotonic()
        names: list[str] = []
        for i, slot in enumerate(self._slots):
            if i in self._free and now - slot.used_at >= self.arena_idle_s and slot.names():
                names += slot.names()
                slot.release()
                slot.out_want = self.arena_bytes
        if names and self._pipe is not None:
            self._pipe.send(Forget(tuple(names)))
        if any(s.names() for s in self._slots):
            self._arm_trim()

    def _fail_pending(self, exc: WorkerCrashed) -> None:
        """Fail every batch the worker held: the one it was computing with ``exc``; those
        queued behind it never started, so they fail with ``WorkerCrashed(started=False)``
        (the stage requeues their requests without counting an attempt)."""
        self.supervisor.disarm()
        pending, self._pending = self._pending, {}
        self._free = list(range(self.capacity))
        for i, (fut, _, _) in enumerate(pending.values()):
            if not fut.done():
                fut.set_exception(exc if i == 0 else WorkerCrashed(
                    f"{exc} (this batch was queued behind the failed one)", started=False))

    def _on_exit(self, proc: Any) -> None:
        """The worker's sentinel fired, its pipe broke, or supervision killed it: it is dead."""
        if proc is not self._proc:
            return
        code = proc.exitcode  # before reaping, which happens on another thread
        self._discard(proc)
        self._proc, self._pipe = None, None
        self._ready = False
        hung, self._hung = self._hung, None
        how = ("died" if code is None else
               f"died (signal {-code})" if code < 0 else f"died (exit code {code})")
        err = WorkerCrashed(f"{self.label} (pid {proc.pid}) {hung if hung is not None else how}")
        if not self._stopping:
            log.warning("%s; replacing it", err.message)
        fut = self._ready_fut
        if fut is not None and not fut.done():
            fut.set_exception(err)
        self._fail_pending(err)
        if not self._stopping:
            self.supervisor.down()
        self.on_change()
