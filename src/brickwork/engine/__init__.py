"""Running plans: the executor, the backend seam and the backends."""

from ._autoscale import Autoscaler, ScaleDecision
from ._backend import Backend, StageRunner
from ._executor import Executor, InferResult
from ._local import LocalBackend, ProcessBackend
from ._replicas import Replica, RunResult
from ._stage import Stage
from ._stats import bottleneck
from ._stream import stream_plan

__all__ = ["Autoscaler", "Backend", "Executor", "InferResult", "LocalBackend", "ProcessBackend", "Replica",
           "RunResult", "ScaleDecision", "Stage", "StageRunner", "bottleneck", "stream_plan"]
