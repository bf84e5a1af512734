"""The actor behind one replica: it rebuilds its brick from a spec (never a pickled live
model), loads and warms it on its device, and runs batches.

A batch arrives as the requests' tensor dicts, each value a numpy array (sent by the ingress)
or a :class:`~._tensors.RemoteTensor` (made by an upstream actor; fetched here, straight from
the object store that holds it). The actor concatenates them, calls the brick and answers a
:class:`BatchAnswer`: outputs the ingress asked to keep in the cluster are put in the object
store and answered as references, the rest come back as arrays. A model error is answered as
a value (errors pickle), so only a dead actor or node shows up as a Ray failure. A batch of
plain tensors comes and goes as one frame (``run_frame``, see ``_frames.py``): Ray passes bytes
through without its msgpack and pickle passes, which is most of a small call's cost. The same
frames also come over the actor's own socket (``_dataplane.py``), without a Ray call at all;
one batch computes at a time whichever way it came.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bricks import BrickSpec, brick_from_spec, register_kind
from ..errors import ModelError, RequestError, WorkerCrashed
from ..spec import Tensors
from ._dataplane import FRAME, HELD, FrameServer
from ._frames import FrameError, frameable, pack, unpack
from ._tensors import RemoteTensor

__all__ = ["BatchAnswer", "BrickActor"]


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    outputs: Mapping[str, Any]  # name -> ndarray, or (ObjectRef, dtype str, shape) kept remote
    compute_s: float
    fetched: int  # bytes this actor fetched from other nodes' object stores
    error: RequestError | None = None


def _resolve(parts: Sequence[Mapping[str, Any]]) -> Tensors:
    import ray

    refs = list({id(v.ref): v.ref for p in parts for v in p.values() if isinstance(v, RemoteTensor)}.values())
    fetched: dict[int, np.ndarray] = {}
    if refs:
        for ref, value in zip(refs, ray.get(refs), strict=True):
            fetched[id(ref)] = value
        by_ref = {id(v.ref): fetched[id(v.ref)] for p in parts for v in p.values() if isinstance(v, RemoteTensor)}
    else:
        by_ref = {}
    cols: dict[str, list[np.ndarray]] = {}
    for part in parts:
        for name, value in part.items():
            arr = value.resolve(by_ref[id(value.ref)]) if isinstance(value, RemoteTensor) else value
            cols.setdefault(name, []).append(arr)
    return {n: v[0] if len(v) == 1 else np.concatenate(v, axis=0) for n, v in cols.items()}


class BrickActor:
    """Wrapped with ``ray.remote`` by the replica; a plain class so it imports without Ray."""

    def __init__(self, stage: str, spec: BrickSpec, device: str, kind_target: str | None) -> None:
        if kind_target is not None:
            register_kind(spec.kind, kind_target)
        self.stage = stage
        brick = brick_from_spec(spec)
        try:
            brick.device = device  # type: ignore[attr-defined]
        except AttributeError:
            pass
        brick.load()
        brick.warmup()
        self.brick = brick
        self._lock = threading.Lock()  # one batch at a time: Ray calls and data plane connections
        self._server: FrameServer | None = None
        self._held: dict[int, tuple[int, BatchAnswer]] = {}  # key -> (connection, answer)
        self._held_lock = threading.Lock()
        self._held_seq = 0

    def endpoint(self) -> tuple[str, int, bytes]:
        """The data plane's address and token, starting it on first use: it listens on this
        node's address as Ray knows it, on an ephemeral port."""
        import ray

        with self._lock:
            if self._server is None:
                self._server = FrameServer(ray.util.get_node_ip_address(), self._serve_frame, self._drop)
            return self._server.host, self._server.port, self._server.token

    def take(self, key: int) -> BatchAnswer:
        """A data plane answer that was not a plain-tensor frame (see ``_serve_frame``)."""
        with self._held_lock:
            return self._held.pop(key)[1]

    def _serve_frame(self, frame: bytearray, conn: int) -> tuple[int, bytes]:
        answer = self.run_frame(frame)
        if isinstance(answer, bytes):
            return FRAME, answer
        with self._held_lock:
            self._held_seq += 1
            self._held[self._held_seq] = (conn, answer)
            return HELD, self._held_seq.to_bytes(8, "little")

    def _drop(self, conn: int) -> None:
        with self._held_lock:
            for key in [k for k, (c, _) in self._held.items() if c == conn]:
                del self._held[key]

    def ready(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def ping(self) -> int:
        return os.getpid()

    def run(self, parts: Sequence[Mapping[str, Any]], keep_remote: frozenset[str],
            remote_min_bytes: int) -> BatchAnswer:
        """The general path: the requests' tensor dicts, pickled by Ray."""
        import ray

        t_fetch = sum(v.nbytes for p in parts for v in p.values() if isinstance(v, RemoteTensor))
        try:
            inputs = _resolve(parts)
        except ray.exceptions.RayError as exc:  # an upstream actor or node died with the tensor
            return BatchAnswer({}, 0.0, t_fetch, WorkerCrashed(
                f"stage {self.stage!r} could not fetch its input from the cluster: {type(exc).__name__}: {exc}"))
        return self._compute(inputs, keep_remote, remote_min_bytes, t_fetch)

    def run_frame(self, frame: bytes | bytearray) -> bytes | BatchAnswer:
        """The hot path: a batch of plain tensors as one frame (``_frames.py``), answered as a
        frame when its outputs are plain tensors too, else as a :class:`BatchAnswer`."""
        try:
            inputs, meta = unpack(frame)
        except FrameError as exc:
            return BatchAnswer({}, 0.0, 0, ModelError(f"stage {self.stage!r}: {exc}"))
        answer = self._compute(inputs, frozenset(meta.get("keep", ())), int(meta.get("min", 0)), 0)
        if answer.error is None and frameable(answer.outputs):
            return pack(answer.outputs, {"c": answer.compute_s})
        return answer

    def _compute(self, inputs: Tensors, keep_remote: frozenset[str], remote_min_bytes: int,
                 t_fetch: int) -> BatchAnswer:
        import ray

        try:
            with self._lock:
                t0 = time.perf_counter()
                out = self.brick(inputs)
                compute_s = time.perf_counter() - t0
        except RequestError as exc:
            return BatchAnswer({}, 0.0, t_fetch, exc)
        except Exception as exc:
            return BatchAnswer({}, 0.0, t_fetch, ModelError(
                f"brick {self.stage!r} raised {type(exc).__name__}: {exc}"))
        answer: dict[str, Any] = {}
        for name, value in out.items():
            value = np.asarray(value)
            if name in keep_remote and value.nbytes >= remote_min_bytes and not value.dtype.hasobject:
                answer[name] = (ray.put(value), value.dtype.str, value.shape)
            else:
                answer[name] = value
        return BatchAnswer(answer, compute_s, t_fetch)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.brick.close()
