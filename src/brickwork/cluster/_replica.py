"""Ray replicas: one Ray actor per replica of a stage, behind the engine's ``Replica`` seam.

The stage's queue and dynamic batching stay in the ingress (the process that runs the
executor); one batch is one actor call. An actor is *named* (``<stage>/<index>``) in a
namespace derived from the pipeline, so several ingresses (``brickwork serve --backend ray``
on several nodes) attach to the same actors instead of each loading its own copy: the first
ingress creates an actor, the others find it.

Faults, with the process workers' guarantees:

- an actor that dies (killed, its worker process SIGKILLed, its node lost) fails the batch it
  was computing with ``WorkerCrashed`` (the stage retries its requests once, elsewhere); batches
  queued behind it never started and go back to the queue without counting an attempt;
- a batch running past ``hang_after_s`` (the stage's ``timeout_s``, else ``health_timeout_s``)
  means a hung actor: it is killed and handled as a death; an idle actor is pinged every
  ``min(1 s, health_timeout_s / 2)`` and one that leaves a ping unanswered that long is too;
- a dead actor is replaced, with capped exponential backoff for as long as the pipeline runs;
  Ray places the new one on any node with the resources it asks for, so losing a node moves
  its replicas to the survivors. Another ingress that finds the actor gone does the same, and
  ``get_if_exists`` makes both end up with one actor.

Batches of plain tensors (fixed-size dtypes, up to ``FRAME_MAX_BYTES``, no output kept in the
cluster) go over the actor's data plane (``_dataplane.py``: its own socket, no Ray call) unless
the stage says ``ray: {data_plane: false}``; the rest go as Ray calls. A data plane connection
that closes is the actor's death, as above.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..bricks import kind_module
from ..engine import RunResult
from ..errors import ConfigError, DeadlineExceeded, ModelError, WorkerCrashed
from ..faults import SupervisedFigures, Supervisor
from ..plan import StagePlan
from ..spec import Tensors
from ._actor import BatchAnswer, BrickActor
from ._dataplane import FRAME, HELD, MAGIC, ClientProtocol
from ._frames import FrameError, frameable, pack, unpack
from ._tensors import RemoteTensor

__all__ = ["RayReplica"]

log = logging.getLogger("brickwork.cluster")

_ACTOR_CLASS: Any = None


def actor_class() -> Any:
    """``ray.remote(BrickActor)``, made once (Ray exports the class to the cluster once)."""
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray

        _ACTOR_CLASS = ray.remote(BrickActor)
    return _ACTOR_CLASS


def _ray_options(stage: StagePlan) -> dict[str, Any]:
    placement = stage.options.ray
    if placement is None:
        return {"num_cpus": 0}  # a light default: Ray still needs a CPU-less slot per actor
    opts: dict[str, Any] = {"num_cpus": placement.num_cpus}
    if placement.num_gpus:
        opts["num_gpus"] = placement.num_gpus
    if placement.memory is not None:
        opts["memory"] = placement.memory
    if placement.resources:
        opts["resources"] = dict(placement.resources)
    if placement.spread:
        opts["scheduling_strategy"] = "SPREAD"
    return opts


class RayReplica(SupervisedFigures):
    """One actor of a stage, supervised like a worker process (:class:`~brickwork.faults.
    Supervisor`: watchdog, heartbeat, replacement with backoff). ``on_change`` is called when it
    dies or comes back."""

    capacity = 4  # one batch computing, full ones waiting in the actor's mailbox

    def __init__(self, stage: StagePlan, index: int, *, namespace: str,
                 keep_remote: frozenset[str] = frozenset(), remote_min_bytes: int = 64 << 10,
                 start_timeout_s: float = 300.0) -> None:
        spec_of = getattr(stage.brick, "spec", None)
        if spec_of is None:
            raise ConfigError(f"brick {stage.name!r} has no spec(); it cannot run in a Ray actor. "
                              "Build it from a file or an importable function, or use backend='local'")
        self.spec = spec_of()
        self.stage = stage
        self.index = index
        self.namespace = namespace
        self.actor_name = f"{stage.name}/{index}"
        self.label = f"stage {stage.name!r} replica {index} (actor {self.actor_name})"
        self.keep_remote = keep_remote
        self.remote_min_bytes = remote_min_bytes
        self.start_timeout_s = start_timeout_s
        self.inflight = 0
        self.batches = 0
        self.on_change: Callable[[], None] = lambda: None
        policy = stage.options.policy
        self.supervisor = Supervisor(
            self, hang_after_s=policy.timeout_s or policy.health_timeout_s,
            hang_setting="timeout_s" if policy.timeout_s else "health_timeout_s",
            health_timeout_s=policy.health_timeout_s)
        self.owner = False  # this ingress created the actor (and kills it on stop)
        self.node: str | None = None
        self.pid: int | None = None
        self._handle: Any = None
        self._run: Any = None
        self._run_frame: Any = None
        self._ready = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0
        # batches the actor holds, oldest first: seq -> (future, bytes the ingress sent)
        self._pending: dict[int, tuple[asyncio.Future[RunResult], int]] = {}
        self.data_plane = stage.options.ray is None or stage.options.ray.data_plane
        self._conn: ClientProtocol | None = None  # the actor's data plane, when connected
        self._conn_order: deque[int] = deque()  # batches sent on it, in order (it answers in order)

    @property
    def alive(self) -> bool:
        return self._ready and not self._stopping

    def info(self) -> dict[str, Any]:
        return {"index": self.index, "kind": "ray", "actor": self.actor_name, "namespace": self.namespace,
                "node": self.node, "pid": self.pid, "owner": self.owner, "alive": self.alive,
                "data_plane": self._conn is not None,
                **self.supervisor.info(), "batches": self.batches}

    # -- lifecycle (Supervised) ----------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.spawn()
        self.supervisor.up()

    async def spawn(self) -> None:
        """Find the named actor, or create it; wait until its brick is loaded and warm."""
        import ray

        loop = self._loop = asyncio.get_running_loop()

        def get_or_create() -> tuple[Any, bool]:
            try:
                return ray.get_actor(self.actor_name, namespace=self.namespace), False
            except ValueError:
                pass
            cls = actor_class().options(
                name=self.actor_name, namespace=self.namespace, get_if_exists=True, max_restarts=0,
                max_concurrency=1, **_ray_options(self.stage))
            return cls.remote(self.stage.name, self.spec, self.stage.options.device,
                              kind_module(self.spec.kind)), True

        handle, created = await loop.run_in_executor(None, get_or_create)
        try:
            info = await asyncio.wait_for(_await(handle.ready.remote(), loop), self.start_timeout_s)
        except (ray.exceptions.RayActorError, TimeoutError) as exc:
            # a dead actor keeps its name until it is killed: free it for the next attempt (an
            # actor scheduled onto a node that died before the cluster noticed ends up so)
            _kill(handle)
            if isinstance(exc, ray.exceptions.RayActorError):
                cause = getattr(exc, "cause", None) or exc
                raise ConfigError(f"stage {self.stage.name!r}: its actor could not start: {cause}") from None
            raise ConfigError(f"stage {self.stage.name!r}: its actor did not load within "
                              f"{self.start_timeout_s:g} s (does the cluster have the resources it asks "
                              f"for: {_ray_options(self.stage)}?)") from None
        self._handle, self.owner = handle, created
        # task events (Ray's per-task bookkeeping for its state API): 0.04-0.2 ms of a 1.5 ms call here
        self._run = handle.run.options(enable_task_events=False)
        self._run_frame = handle.run_frame.options(enable_task_events=False)
        self.node, self.pid = info["node"], info["pid"]
        if self.data_plane:
            await self._connect(handle, loop)
        self._ready = True

    async def _connect(self, handle: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Open the actor's data plane; without it (unreachable, say), batches go as Ray calls."""
        conn: ClientProtocol | None = None
        try:
            host, port, token = await asyncio.wait_for(_await(handle.endpoint.remote(), loop), self.start_timeout_s)
            _, made = await asyncio.wait_for(loop.create_connection(
                lambda: ClientProtocol(lambda tag, body: self._on_data(handle, tag, body),
                                       lambda c: self._lost(handle, c)),
                host, port), 30.0)
            conn = made
            made.transport.write(MAGIC + token)
            await asyncio.wait_for(asyncio.shield(made.acked), 30.0)
        except Exception as exc:
            if conn is not None:
                conn.close()
            log.warning("%s: no data plane (%s: %s); its batches go as Ray calls", self.label,
                        type(exc).__name__, exc)
            return
        self._conn = conn
        self._conn_order.clear()

    async def stop(self) -> None:
        self._stopping = True
        self._ready = False
        self.supervisor.stop()
        self._fail_pending(WorkerCrashed(f"{self.label} stopped"))
        handle, self._handle = self._handle, None
        self._close_conn()
        if handle is not None and self.owner:
            _kill(handle)

    def kill(self, reason: str) -> None:
        """Supervision's verdict (hung, or silent while idle): kill the actor, handle it as dead."""
        self._died(self._handle, reason)

    def ping(self) -> bool:
        handle, loop = self._handle, self._loop
        if handle is None or loop is None:
            return False
        handle.ping.remote().future().add_done_callback(
            lambda f: loop.call_soon_threadsafe(self._pong, handle, f))
        return True

    def _pong(self, handle: Any, done: Any) -> None:
        if handle is not self._handle:
            return
        if done.exception() is None:
            self.supervisor.answered()
        else:  # the actor (or its node) is gone
            self._died(handle, f"died ({type(done.exception()).__name__})")

    def busy(self) -> bool:
        return bool(self._pending)

    def changed(self) -> None:
        self.on_change()

    # -- the hot path ------------------------------------------------------------------
    def run(self, parts: Sequence[Tensors], wanted: Callable[[], bool] | None = None,
            ) -> asyncio.Future[RunResult]:
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[RunResult] = loop.create_future()
        if not self.alive:
            fut.set_exception(WorkerCrashed(f"{self.label} is not running"))
            return fut
        if wanted is not None and not wanted():
            fut.set_exception(DeadlineExceeded(
                f"stage {self.stage.name!r}: every request of the batch expired before compute"))
            return fut
        whole: Tensors | None = None
        if all(isinstance(v, np.ndarray) for p in parts for v in p.values()):
            # one array per input: a batch travels as the brick will take it
            whole = parts[0] if len(parts) == 1 else {
                name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
            sent = sum(int(v.nbytes) for v in whole.values())
        else:
            sent = sum(int(v.nbytes) for p in parts for v in p.values() if isinstance(v, np.ndarray))
        self.batches += 1
        self._seq += 1
        seq = self._seq
        self._pending[seq] = (fut, sent)
        if len(self._pending) == 1:
            self.supervisor.watch()
        handle = self._handle
        if whole is not None and self._conn is not None and not self.keep_remote and frameable(whole):
            # the hot path: the frame over the actor's own socket, no Ray call
            self._conn_order.append(seq)
            self._conn.send(pack(whole, {}))
            return fut
        if whole is not None and frameable(whole):
            # the hot path: one bytes object each way, which Ray passes without pickling
            meta: dict[str, Any] = {"keep": sorted(self.keep_remote), "min": self.remote_min_bytes} \
                if self.keep_remote else {}
            ref = self._run_frame.remote(pack(whole, meta))
        else:
            payload = [whole] if whole is not None else list(parts)
            ref = self._run.remote(payload, self.keep_remote, self.remote_min_bytes)
        ref.future().add_done_callback(
            lambda f: loop.call_soon_threadsafe(self._answered, seq, handle, f))
        return fut

    def _lost(self, handle: Any, conn: ClientProtocol) -> None:
        if conn is self._conn:
            self._died(handle, "closed its data plane connection")

    def _on_data(self, handle: Any, tag: int, body: bytes) -> None:
        """An answer on the data plane: the oldest batch sent on it."""
        if handle is not self._handle or not self._conn_order:
            return
        seq = self._conn_order.popleft()
        if tag == FRAME:
            self._settle(seq, handle, None, body)
        elif tag == HELD:  # an error, or outputs that are no frame: Ray brings the answer
            loop = self._loop
            assert loop is not None
            ref = handle.take.options(enable_task_events=False).remote(int.from_bytes(body, "little"))
            ref.future().add_done_callback(lambda f: loop.call_soon_threadsafe(self._answered, seq, handle, f))
        else:
            self._died(handle, f"answered an unknown data plane message (tag {tag})")

    def _answered(self, seq: int, handle: Any, done: Any) -> None:
        exc = done.exception()
        self._settle(seq, handle, exc, None if exc is not None else done.result())

    def _settle(self, seq: int, handle: Any, exc: BaseException | None, answer: Any) -> None:
        import ray

        pending = self._pending.get(seq)
        if pending is None or handle is not self._handle:
            return  # given up already (the actor died and the batch was failed)
        if isinstance(exc, ray.exceptions.RayActorError):
            self._died(handle, f"died ({type(exc).__name__})")  # fails this batch and those behind
            return
        del self._pending[seq]
        self.supervisor.answered()
        if self._pending:  # the actor answers in order: the next batch starts now
            self.supervisor.watch()
        else:
            self.supervisor.disarm()
        fut, sent = pending
        if fut.done():
            return
        if exc is not None:  # a Ray failure that is not the actor's death
            fut.set_exception(WorkerCrashed(f"{self.label}: {type(exc).__name__}: {exc}"))
            return
        if isinstance(answer, bytes):  # a frame: plain tensors, viewed in place
            try:
                frame_out, meta = unpack(answer)
            except FrameError as err:
                fut.set_exception(ModelError(f"{self.label} answered {err}"))
                return
            copied = {"ingress_in": sent, "ingress_out": sum(int(v.nbytes) for v in frame_out.values())}
            fut.set_result(RunResult(frame_out, float(meta.get("c", 0.0)), {k: v for k, v in copied.items() if v}))
            return
        assert isinstance(answer, BatchAnswer)
        if answer.error is not None:
            fut.set_exception(answer.error)
            return
        outputs: Tensors = {}
        received = 0
        for name, value in answer.outputs.items():
            if isinstance(value, tuple):
                ref, dtype, shape = value
                outputs[name] = RemoteTensor(ref, np.dtype(dtype), tuple(shape))  # type: ignore[assignment]
            else:
                outputs[name] = value
                received += int(value.nbytes)
        copied = {"ingress_in": sent, "ingress_out": received, "cluster": answer.fetched}
        fut.set_result(RunResult(outputs, answer.compute_s, {k: v for k, v in copied.items() if v}))

    # -- deaths ------------------------------------------------------------------------
    def _died(self, handle: Any, what: str) -> None:
        if handle is None or handle is not self._handle:
            return
        self._handle = None
        self._ready = False
        self._close_conn()
        # hung: stop it; dead or unreachable (a lost node): the cluster forgets it now instead
        # of after its health checks, which frees its name for the replacement at once
        _kill(handle)
        err = WorkerCrashed(f"{self.label} on node {str(self.node)[:12]}, pid {self.pid}, {what}")
        if not self._stopping:
            log.warning("%s; replacing it", err.message)
        self._fail_pending(err)
        if not self._stopping:
            self.supervisor.down()
        self.on_change()

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        self._conn_order.clear()
        if conn is not None:
            conn.close()

    def _fail_pending(self, exc: WorkerCrashed) -> None:
        """The batch computing fails with ``exc``; those queued behind it never started."""
        self.supervisor.disarm()
        pending, self._pending = self._pending, {}
        for i, (fut, _) in enumerate(pending.values()):
            if not fut.done():
                fut.set_exception(exc if i == 0 else WorkerCrashed(
                    f"{exc} (this batch was queued behind the failed one)", started=False))


def _kill(handle: Any) -> None:
    import ray

    try:
        ray.kill(handle, no_restart=True)
    except Exception:  # already gone
        pass


async def _await(ref: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """Await a Ray ObjectRef on any event loop (uvloop included)."""
    return await asyncio.wrap_future(ref.future(), loop=loop)

