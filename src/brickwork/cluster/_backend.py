"""The Ray backend: every stage's replicas are Ray actors; queues and batching stay here.

``RayBackend(address=None)`` starts a private single-node Ray instance on this machine, every
listener on 127.0.0.1; ``address="auto"`` or ``"host:port"`` joins a running cluster (started
with ``ray start --head`` and ``ray start --address=...`` on the other nodes). The actors of a
pipeline live in a namespace derived from its name and its bricks' specs, so every ingress
serving the same pipeline file shares them, and a changed pipeline gets actors of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from .. import plan as p
from ..engine import LocalBackend, Stage
from ..errors import ConfigError
from ._replica import RayReplica

__all__ = ["RayBackend", "connect", "kept_remote", "namespace_of"]

DEFAULT_REMOTE_MIN_BYTES = 64 << 10


def connect(address: str | None = None, *, object_store_memory: int | None = None,
            temp_dir: str | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a private one on this machine (None).
    Does nothing when this process is connected already."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's C++ crash handler would take SIGTERM in this process (the ingress) and abort it 3 s
    # later, cutting the server's drain short and skipping every exit handler
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    if address is None:
        # before Ray is imported: keeps every listener of a local instance on 127.0.0.1
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None and not _SESSIONS_HANDLER:
        # registered before Ray is imported where possible, so that it runs after Ray's own exit
        # handler (atexit runs the last registered first), once Ray has stopped the instance
        _SESSIONS_HANDLER.append(atexit.register(_remove_sessions))
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'brickwork[ray]'") from None
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        options.update(address="local", include_dashboard=False, _node_ip_address="127.0.0.1")
        if object_store_memory is not None:
            options["object_store_memory"] = object_store_memory
        if temp_dir is not None:
            options["_temp_dir"] = temp_dir
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address!r}"
        raise ConfigError(f"could not start or join {where}: {exc}") from exc
    if address is None:
        node = getattr(ray._private.worker, "_global_node", None)
        session = node.get_session_dir_path() if node is not None else None
        if session:  # a private instance: its session folder (logs, sockets) goes with it
            _SESSIONS.append(session)


_SESSIONS: list[str] = []  # session folders of the private instances this process started
_SESSIONS_HANDLER: list[Any] = []


def _remove_sessions() -> None:
    """At exit, after Ray's own handler stopped the private instance: wait for its processes to
    go, remove its session folder and the ``session_latest`` link that points to it (Ray never
    removes a session folder; ``brickwork serve --backend ray`` would leave one per start)."""
    if not _SESSIONS:
        return
    import ray

    if ray.is_initialized():  # Ray was imported before connect(): its handler has not run yet
        ray.shutdown()
    for session in _SESSIONS:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and _processes_of(session):
            time.sleep(0.1)
        # Ray's dashboard and runtime-env agents, renamed (``ray::DashboardAgent``) and orphaned
        # when the raylet stops, poll for it and lingered ~1 min here: the instance was ours, so
        # what still holds its files goes now
        for pid in _processes_of(session):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(session, ignore_errors=True)
        latest = os.path.join(os.path.dirname(session), "session_latest")
        if os.path.islink(latest) and os.path.realpath(latest) == os.path.realpath(session):
            with contextlib.suppress(OSError):
                os.unlink(latest)


def _processes_of(session: str) -> list[int]:
    """The processes of a Ray session: those whose command line names its folder (raylet, GCS,
    workers) or that hold a file open in it (the agents, whose command line Ray rewrites)."""
    needle, me, pids = session.encode(), os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(os.path.join(entry.path, "cmdline"), "rb") as f:
                if needle in f.read():
                    pids.append(int(entry.name))
                    continue
            fds = os.path.join(entry.path, "fd")
            for fd in os.listdir(fds):
                if os.readlink(os.path.join(fds, fd)).startswith(session):
                    pids.append(int(entry.name))
                    break
        except OSError:
            continue
    return pids


def namespace_of(plan: p.Plan) -> str:
    """``brickwork.<pipeline>.<hash of its bricks' specs and replica counts>``: ingresses serving
    the same pipeline share actors; a changed brick never attaches to an old actor."""
    parts = []
    for stage in plan.stages.values():
        spec_of = getattr(stage.brick, "spec", None)
        spec = asdict(spec_of()) if spec_of is not None else repr(stage.brick)
        parts.append([stage.name, spec, stage.options.device])
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"brickwork.{plan.name}.{digest}"


def _steps(step: p.PlanStep) -> list[p.PlanStep]:
    out = [step]
    children: tuple[Any, ...] = ()
    if isinstance(step, p.Seq | p.Par):
        children = step.steps
    elif isinstance(step, p.Vote):
        children = step.members
    elif isinstance(step, p.Ladder):
        children = tuple(s for _, s in step.rungs)
    elif isinstance(step, p.Scope):
        children = (step.step,)
    elif isinstance(step, p.Route):
        children = tuple(s for _, s in step.cases) + ((step.default,) if step.default else ())
    for child in children:
        out.extend(_steps(child))
    return out


def kept_remote(plan: p.Plan) -> dict[str, frozenset[str]]:
    """Per stage, the output *ports* whose tensors may stay in the cluster: every reader of the
    tensor is a stage that takes it as it is (no adapter), and it is not a pipeline output.
    A plan that routes or votes reads tensors in the ingress, so there nothing stays remote."""
    steps = _steps(plan.root)
    if any(isinstance(s, p.Route | p.Vote) for s in steps):
        return {}
    plain: set[str] = set()
    adapted: set[str] = set()
    for call in plan.calls():
        for b in call.bindings:
            (adapted if b.adapters else plain).add(b.source)
    ok = plain - adapted - {s.name for s in plan.outputs}
    return {call.stage: frozenset(port for port, name in call.publish if name in ok)
            for call in plan.calls()}


class RayBackend(LocalBackend):
    """``backend="ray"``: each replica of each stage a Ray actor loading its brick from its spec."""

    name = "ray"
    runs = ("inline", "thread", "process", "ray")  # every replica is an actor, whatever its kind

    def __init__(self, *, address: str | None = None, namespace: str | None = None,
                 remote_min_bytes: int = DEFAULT_REMOTE_MIN_BYTES,
                 object_store_memory: int | None = None) -> None:
        super().__init__()
        self.address = address
        self.namespace = namespace
        self.remote_min_bytes = remote_min_bytes
        self.object_store_memory = object_store_memory
        self._keep: Mapping[str, frozenset[str]] = {}
        self._namespace = ""

    async def start(self, plan: p.Plan) -> Mapping[str, Stage]:
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: connect(self.address, object_store_memory=self.object_store_memory))
        self._keep = kept_remote(plan)
        self._namespace = self.namespace or namespace_of(plan)
        return await super().start(plan)

    def _replica(self, stage: p.StagePlan, index: int) -> Any:
        return RayReplica(stage, index, namespace=self._namespace,
                          keep_remote=self._keep.get(stage.name, frozenset()),
                          remote_min_bytes=self.remote_min_bytes)

    def _replicas(self, stage: p.StagePlan) -> list[Any]:
        return [self._replica(stage, i) for i in range(stage.options.replicas)]
