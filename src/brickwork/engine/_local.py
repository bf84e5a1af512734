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
from collections.abc import Mapping

from ..errors import ConfigError
from ..plan import Plan, StagePlan
from ._process import ARENA_IDLE_S, DEFAULT_ARENA_BYTES, ProcessReplica
from ._replicas import InlineReplica, Replica, ThreadReplica, call_brick
from ._stage import Stage

__all__ = ["LocalBackend", "ProcessBackend", "call_brick"]


class LocalBackend:
    name = "local"

    def __init__(self, *, worker: str | None = None, arena_bytes: int = DEFAULT_ARENA_BYTES,
                 arena_idle_s: float = ARENA_IDLE_S) -> None:
        self.worker = worker
        self.arena_bytes = arena_bytes
        self.arena_idle_s = arena_idle_s
        self._stages: dict[str, Stage] = {}

    def _replicas(self, stage: StagePlan) -> list[Replica]:
        kind = self.worker or stage.worker
        n = stage.options.replicas
        if kind == "inline":
            return [InlineReplica(stage)]
        if kind == "thread":
            return [ThreadReplica(stage, i, load=i == 0) for i in range(n)]
        if kind == "process":
            return [ProcessReplica(stage, i, arena_bytes=self.arena_bytes, arena_idle_s=self.arena_idle_s)
                    for i in range(n)]
        raise ConfigError(f"stage {stage.name!r} asks for worker={kind!r}, which the {self.name!r} "
                          "backend does not run; use backend='ray' or worker='thread'/'process'")

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
        return stages

    async def stop(self) -> None:
        stages, self._stages = self._stages, {}
        await asyncio.gather(*(s.stop() for s in stages.values()), return_exceptions=True)


class ProcessBackend(LocalBackend):
    """Every stage in worker processes (``backend="process"``)."""

    name = "process"

    def __init__(self, *, arena_bytes: int = DEFAULT_ARENA_BYTES, arena_idle_s: float = ARENA_IDLE_S) -> None:
        super().__init__(worker="process", arena_bytes=arena_bytes, arena_idle_s=arena_idle_s)
