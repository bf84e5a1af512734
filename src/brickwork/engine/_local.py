"""The local backends: every stage a :class:`~._stage.Stage` on this event loop, its replicas
inline (on the loop), on worker threads, or in worker processes fed through shared memory.

``LocalBackend`` honours each stage's resolved worker kind. ``ProcessBackend`` moves every
stage into worker processes (each brick must be rebuildable from its ``spec()``), which is what
``backend="process"`` selects. A Ray backend is the same shape: a ``Stage`` per plan stage
whose replicas are actors (a ``Replica`` implementation), with nothing else changed.

Replicas per worker kind: ``inline`` runs one copy on the loop whatever ``replicas`` says (one
loop cannot run two at once); ``thread`` runs ``replicas`` threads sharing the one loaded brick;
``process`` runs ``replicas`` processes, each loading its own copy.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping

from ..errors import ConfigError
from ..plan import Plan, StagePlan
from ._autoscale import Autoscaler
from ._process import ARENA_IDLE_S, DEFAULT_ARENA_BYTES, ProcessReplica
from ._replicas import InlineReplica, Replica, ThreadReplica, call_brick
from ._stage import Stage

__all__ = ["LocalBackend", "ProcessBackend", "call_brick"]


class LocalBackend:
    name = "local"
    runs: tuple[str, ...] = ("inline", "thread", "process")  # the worker kinds it can run

    def check(self, plan: Plan) -> None:
        """Refuse, before anything starts, a stage whose worker kind this backend does not run
        (``worker: ray`` under the local backends): Pipeline() calls it, so compile() and
        ``brickwork validate`` say so instead of the pipeline failing at start."""
        for stage in plan.stages.values():
            kind = self.worker or stage.worker
            if kind not in self.runs:
                raise ConfigError(f"stage {stage.name!r} asks for worker={kind!r}, which the "
                                  f"{self.name!r} backend does not run (it runs {list(self.runs)}); "
                                  "use backend='ray' (brickwork serve/run/validate --backend ray) "
                                  "or worker='thread'/'process'")

    def __init__(self, *, worker: str | None = None, arena_bytes: int = DEFAULT_ARENA_BYTES,
                 arena_idle_s: float = ARENA_IDLE_S) -> None:
        self.worker = worker
        self.arena_bytes = arena_bytes
        self.arena_idle_s = arena_idle_s
        self._stages: dict[str, Stage] = {}

    def _replica(self, stage: StagePlan, index: int) -> Replica:
        """Replica ``index`` of ``stage`` (autoscaling asks for more with higher indices)."""
        kind = self.worker or stage.worker
        if kind == "thread":
            return ThreadReplica(stage, index, load=index == 0)
        if kind == "process":
            return ProcessReplica(stage, index, arena_bytes=self.arena_bytes, arena_idle_s=self.arena_idle_s)
        raise ConfigError(f"stage {stage.name!r} asks for worker={kind!r}, which the {self.name!r} "
                          "backend does not run; use backend='ray' or worker='thread'/'process'")

    def _replicas(self, stage: StagePlan) -> list[Replica]:
        if (self.worker or stage.worker) == "inline":
            if stage.options.autoscale is not None:
                raise ConfigError(f"stage {stage.name!r}: replicas {{min, max}} needs worker 'thread', "
                                  "'process' or the ray backend; an inline brick runs one copy on the loop")
            return [InlineReplica(stage)]
        return [self._replica(stage, i) for i in range(stage.options.replicas)]

    async def start(self, plan: Plan) -> Mapping[str, Stage]:
        stages: dict[str, Stage] = {}
        self._stages = stages
        try:
            for stage in plan.stages.values():
                stages[stage.name] = Stage(stage, self._replicas(stage))
            await asyncio.gather(*(s.start() for s in stages.values()))
        except BaseException:
            await self.stop()
            raise
        for name, running in stages.items():
            policy = plan.stages[name].options.autoscale
            if policy is not None:
                scaler = Autoscaler(running, policy, functools.partial(self._replica, plan.stages[name]))
                running.scaler = scaler
                scaler.start()
        return stages

    async def stop(self) -> None:
        stages, self._stages = self._stages, {}
        await asyncio.gather(*(s.scaler.stop() for s in stages.values() if s.scaler is not None),
                             return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in stages.values()), return_exceptions=True)


class ProcessBackend(LocalBackend):
    """Every stage in worker processes (``backend="process"``)."""

    name = "process"

    def __init__(self, *, arena_bytes: int = DEFAULT_ARENA_BYTES, arena_idle_s: float = ARENA_IDLE_S) -> None:
        super().__init__(worker="process", arena_bytes=arena_bytes, arena_idle_s=arena_idle_s)
