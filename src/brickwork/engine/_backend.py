"""The seam between the executor and where bricks run.

A :class:`Backend` turns each :class:`~brickwork.graph.StagePlan` of a plan into a running
:class:`StageRunner` (a batch queue in front of replicas: threads, processes or Ray actors).
The executor only ever calls ``submit``; everything behind it is the backend's business, so
the same plan runs unchanged on every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..plan import Plan
from ..spec import Tensors

__all__ = ["Backend", "StageRunner"]


class StageRunner(Protocol):
    name: str

    async def submit(self, inputs: Tensors, deadline: float | None) -> Tensors:
        """Run one request's tensors through the stage (batched with others by the runner).
        ``deadline`` is a ``time.monotonic()`` instant or None. Raises RequestError subclasses."""
        ...

    def stats(self) -> Mapping[str, Any]: ...

    def live_replicas(self) -> int: ...


class Backend(Protocol):
    name: str

    async def start(self, plan: Plan) -> Mapping[str, StageRunner]:
        """Load every stage's brick on its replicas (warm-up included) and return the runners."""
        ...

    async def stop(self) -> None: ...
