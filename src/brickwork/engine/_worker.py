"""The worker process side (the messages it exchanges with the engine are in ``_messages``).

A worker is started with :func:`worker_main` in a *spawned* process: it rebuilds its brick from
a :class:`~brickwork.bricks.BrickSpec` (never a pickled live model), loads and warms it on its
device, says :class:`WorkerReady`, then answers each :class:`RunBatch` with a
:class:`BatchDone` or :class:`BatchFailed`, and each :class:`Ping` (the engine's heartbeat,
sent while the worker is idle) with a :class:`Pong`. Tensors stay in the shared-memory arenas; messages
carry only :class:`~brickwork.engine._shm.TensorRef` s (and BYTES tensors, pickled; so do
all tensors of a batch whose arena /dev/shm had no room for, named ``""``). :class:`Forget`
unmaps arenas the engine released.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ..bricks import brick_from_spec, register_kind
from ..errors import ModelError, RequestError
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
from ._shm import ALIGN, TensorRef, WorkerArena
from ._wire import Channel

__all__ = ["BatchDone", "BatchFailed", "Forget", "Ping", "Pong", "RunBatch", "Shutdown", "WorkerFailed",
           "WorkerReady", "WorkerStart", "worker_main"]


def _portable(exc: RequestError) -> RequestError:
    try:
        pickle.dumps(exc)
    except Exception:
        return ModelError(str(exc))
    return exc


class _Arenas:
    """The arenas this worker has mapped, by name: the engine's slots (a request and a response
    arena each). A grown arena replaces an old one, so beyond ``limit`` maps the least recently
    used are dropped.

    ``bound`` holds the brick's calls bound to arrays over these maps (see :class:`_Bound`);
    it is emptied whenever any arena is mapped, dropped or forgotten, so a bound call never
    outlives, or reads through, a mapping the engine replaced."""

    def __init__(self, limit: int = 4) -> None:
        self._maps: dict[str, WorkerArena] = {}
        self._limit = limit
        self._last: tuple[str, str, WorkerArena | None, WorkerArena | None] | None = None
        self.bound: dict[tuple[str, str, tuple[TensorRef, ...]], _Bound] = {}

    def pair(self, in_name: str, out_name: str) -> tuple[WorkerArena | None, WorkerArena | None]:
        """A batch's request and response arenas. The same pair as the last batch's (a worker
        with one slot, or the second of two) is returned without touching the maps."""
        last = self._last
        if last is not None and last[0] == in_name and last[1] == out_name:
            return last[2], last[3]
        keep = (in_name, out_name)
        ain, aout = self.get(in_name, keep), self.get(out_name, keep)
        self._last = (in_name, out_name, ain, aout)
        return ain, aout

    def get(self, name: str, keep: tuple[str, str]) -> WorkerArena | None:
        """The arena ``name`` (None for "": no arena, the tensors came in the message)."""
        if not name:
            return None
        arena = self._maps.pop(name, None)
        if arena is None:
            arena = WorkerArena(name)
            self.bound.clear()
        self._maps[name] = arena  # most recently used last
        if len(self._maps) > self._limit:
            self.bound.clear()
            stale = (n for n in list(self._maps) if n not in keep)
            while len(self._maps) > self._limit:
                del self._maps[next(stale)]
        return arena

    def forget(self, names: tuple[str, ...]) -> None:
        self._last = None
        self.bound.clear()
        for name in names:
            self._maps.pop(name, None)  # unmapped once the last view of it is gone


class _Trusted:
    """The input layouts (names, dtypes, shapes: a batch's ``TensorRef`` s) this worker's brick
    has accepted once through its own checks. A brick's checks depend on nothing else, so a batch
    of a layout it accepted before skips them: it goes to the brick's ``call_unchecked`` (an
    optional method: an ONNX brick's is the bare session run). Batches that carry tensors in the
    message (BYTES, no room in /dev/shm) always take the checked call."""

    def __init__(self, brick: Any, limit: int = 256) -> None:
        self.call = getattr(brick, "call_unchecked", None)
        self.bind = self.call is not None and hasattr(brick, "bind_arrays")
        # layouts whose bound call failed once (an output shape that follows the values): not
        # bound again, or every other batch of theirs would run twice
        self.unbindable: set[tuple[TensorRef, ...]] = set()
        self._seen: set[tuple[TensorRef, ...]] = set()
        self._limit = limit

    def unchecked(self, msg: RunBatch) -> Any:
        """The brick's unchecked call when ``msg``'s layout passed its checks before, else None."""
        if self.call is not None and not msg.pickled and msg.inputs in self._seen:
            return self.call
        return None

    def accepted(self, msg: RunBatch) -> None:
        if self.call is not None and not msg.pickled:
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen.add(msg.inputs)


_refs: dict[tuple[Any, ...], TensorRef] = {}


def _ref(name: str, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int, arena: str) -> TensorRef:
    """The ``TensorRef`` of an output; a stage's answers repeat a few, so they are made once."""
    key = (name, dtype, shape, offset, arena)
    ref = _refs.get(key)
    if ref is None:
        if len(_refs) >= 256:
            _refs.clear()
        ref = _refs[key] = TensorRef(name, dtype.str, shape, offset, arena)
    return ref


@dataclass(frozen=True, slots=True)
class _Bound:
    """A batch layout's call bound to where its tensors lie: ``call()`` reads the inputs in the
    request arena and writes the outputs straight into the response arena (a brick's optional
    ``bind_arrays``; an ONNX brick's is ONNX Runtime's I/O binding), so the answer is known
    before the call: ``outputs`` (the refs), ``copied`` and ``needed`` (bytes)."""

    call: Callable[[], None]
    outputs: tuple[TensorRef, ...]
    copied: int
    needed: int


def _bind(brick: Any, msg: RunBatch, ain: WorkerArena, aout: WorkerArena, done: BatchDone,
          arenas: _Arenas) -> None:
    """Bind ``msg``'s layout for the next batches, when its answer ``done`` lay wholly in the
    response arena (no pass-through, nothing pickled) and the brick can bind."""
    if done.pickled or any(ref.arena != "out" for ref in done.outputs):
        return
    try:
        call = brick.bind_arrays(ain.views(msg.inputs), {ref.name: aout.view(ref) for ref in done.outputs})
    except Exception:  # a brick that cannot bind this layout keeps the plain call
        return
    if call is not None:
        if len(arenas.bound) >= 64:
            arenas.bound.clear()
        arenas.bound[(msg.in_arena, msg.out_arena, msg.inputs)] = _Bound(
            call, done.outputs, done.copied, done.out_needed)


def _run(brick: Any, msg: RunBatch, arenas: _Arenas, trusted: _Trusted) -> BatchDone | BatchFailed:
    ain, aout = arenas.pair(msg.in_arena, msg.out_arena)
    if arenas.bound and not msg.pickled:
        bound = arenas.bound.get((msg.in_arena, msg.out_arena, msg.inputs))
        if bound is not None:
            t0 = time.perf_counter()
            try:
                bound.call()
            except Exception:  # e.g. an output whose shape depends on the values: unbind, and
                del arenas.bound[(msg.in_arena, msg.out_arena, msg.inputs)]  # run it plainly
                if len(trusted.unbindable) >= 256:
                    trusted.unbindable.clear()
                trusted.unbindable.add(msg.inputs)
            else:
                return BatchDone(msg.seq, bound.outputs, {}, time.perf_counter() - t0,
                                 bound.copied, bound.needed)
    inputs: Tensors = ain.views(msg.inputs) if ain is not None else {}
    if msg.pickled:
        inputs.update(msg.pickled)
    call = trusted.unchecked(msg)
    t0 = time.perf_counter()
    try:
        if call is None:
            out = brick(inputs)
            trusted.accepted(msg)  # its checks passed (the brick raised nothing)
        else:
            out = call(inputs)
    except RequestError as exc:
        return BatchFailed(msg.seq, _portable(exc))
    except Exception as exc:
        return BatchFailed(msg.seq, ModelError(f"brick {brick.name!r} raised {type(exc).__name__}: {exc}"))
    compute_s = time.perf_counter() - t0
    refs: list[TensorRef] = []
    pickled: dict[str, np.ndarray] = {}
    at = copied = overflow = 0
    for name, value in out.items():
        arr = value if type(value) is np.ndarray else np.asarray(value)
        if arr.dtype.hasobject:
            pickled[name] = arr
            continue
        # only a view can lie in the request arena (a model's fresh output has no base)
        offset = ain.offset_of(arr) if ain is not None and arr.base is not None else None
        if offset is not None:  # a pass-through: answer with where it already is
            refs.append(_ref(name, arr.dtype, arr.shape, offset, "in"))
            continue
        nbytes = arr.nbytes
        end = at + nbytes
        if aout is not None and end <= aout.size:
            aout.write(arr, at)
            refs.append(_ref(name, arr.dtype, arr.shape, at, "out"))
            copied += nbytes
            at = (end + ALIGN - 1) // ALIGN * ALIGN
        else:
            pickled[name] = arr
            overflow += nbytes + ALIGN
    done = BatchDone(msg.seq, tuple(refs), pickled, compute_s, copied, at + overflow)
    if (call is not None and trusted.bind and ain is not None and aout is not None
            and msg.inputs not in trusted.unbindable):
        _bind(brick, msg, ain, aout, done, arenas)  # a layout trusted and answered twice
    return done


def worker_main(start: WorkerStart, conn: Connection) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when workers stop
    chan = Channel(conn.fileno())  # ``conn`` stays referenced (it owns the descriptor)
    try:
        if start.kind_target is not None:
            register_kind(start.brick.kind, start.kind_target)
        brick = brick_from_spec(start.brick)
        try:
            brick.device = start.device  # type: ignore[attr-defined]
        except AttributeError:
            pass
        brick.load()
        brick.warmup()
    except BaseException as exc:  # report and leave: the engine turns this into an error
        chan.send(WorkerFailed(f"stage {start.stage!r} worker could not build its brick: "
                               f"{type(exc).__name__}: {exc}"))
        return
    chan.send(WorkerReady(os.getpid()))
    arenas = _Arenas()
    trusted = _Trusted(brick)
    while True:
        try:
            msg = chan.recv()
        except (EOFError, OSError):  # the engine is gone
            return
        if isinstance(msg, Shutdown):
            brick.close()
            return
        if isinstance(msg, Ping):
            chan.send(Pong(msg.seq))
            continue
        if isinstance(msg, Forget):
            arenas.forget(msg.names)
            continue
        chan.send(_run(brick, msg, arenas, trusted))
