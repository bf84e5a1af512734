"""Clients as Ray actors (``start_method: ray``): the same ``ClientLoop`` as a client process,
placed by Ray on any node of the cluster (``ray_address``), so a site's data path is read on the
node that holds it. Messages travel through Ray's object store; nothing else changes: the
deadline, the quorum, secure aggregation, the checkpoint.

A crashed actor (its process killed) surfaces as ``RayActorError`` and is dropped as
``crashed``; one past the deadline is killed with ``ray.kill`` and restarted for a later round.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ._messages import Refusal
from ._process import ClientLoop, ClientSpec

__all__ = ["RayClient", "gather", "init"]


class _Actor:
    def __init__(self, spec: ClientSpec) -> None:
        self.loop = ClientLoop(spec)

    def hello(self) -> Any:
        return self.loop.hello

    def handle(self, msg: Any) -> Any:
        return self.loop.handle(msg)


def init(address: str | None) -> None:
    """Join the cluster at ``address``, or start a private Ray instance on 127.0.0.1 (the same
    connection the ray serving backend makes; nothing when this process is connected)."""
    from ..cluster import connect

    connect(address)


class RayClient:
    """The server's handle on one client actor; same surface as ``ClientProcess``."""

    def __init__(self, spec: ClientSpec, *, num_cpus: float = 0.0) -> None:
        import ray

        self.spec = spec
        actor_class: Any = ray.remote(_Actor)
        self.actor: Any = actor_class.options(num_cpus=num_cpus, max_restarts=0).remote(spec)
        self.pending: Any = self.actor.hello.remote()
        self.ready: Any = None
        self.pid: int | None = None
        self._dead: str | None = None

    @property
    def client_id(self) -> str:
        return self.spec.client_id

    def alive(self) -> bool:
        return self._dead is None

    def send(self, msg: Any) -> bool:
        if self._dead is not None:
            return False
        self.pending = self.actor.handle.remote(msg)
        return True

    def exit_reason(self) -> str:
        return self._dead or "crashed: the actor is gone"

    def kill(self) -> None:
        import ray

        if self._dead is None:
            self._dead = "killed"
        ray.kill(self.actor, no_restart=True)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.kill()


def gather(handles: Mapping[str, RayClient], expect: type, round_: int, deadline: float | None,
           deadline_s: float | None) -> tuple[dict[str, Any], dict[str, str]]:
    """``_runner._gather`` for actors: wait on each handle's pending call."""
    import ray
    from ray.exceptions import RayActorError, RayError

    pending = {h.pending: cid for cid, h in handles.items()}
    got: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    while pending:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
        if not done:
            for cid in pending.values():
                handles[cid].kill()
                dropped[cid] = f"hung: no answer within deadline_s={deadline_s:g}"
            break
        for ref in done:
            cid = pending.pop(ref)
            try:
                msg = ray.get(ref)
            except RayActorError as exc:
                handles[cid]._dead = dropped[cid] = f"crashed: Ray actor died ({type(exc).__name__})"
                continue
            except RayError as exc:
                dropped[cid] = f"crashed: {type(exc).__name__}: {str(exc)[:200]}"
                continue
            if isinstance(msg, Refusal):
                dropped[cid] = msg.reason
            elif isinstance(msg, expect) and getattr(msg, "round", round_) == round_:
                got[cid] = msg
                if hasattr(msg, "pid"):
                    handles[cid].pid = msg.pid
            else:
                dropped[cid] = f"protocol: expected {expect.__name__}, got {type(msg).__name__}"
    return got, dropped
