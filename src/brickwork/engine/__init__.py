"""Running plans: the executor, the backend seam and the backends."""

from ._backend import Backend, StageRunner
from ._executor import Executor, InferResult
from ._local import LocalBackend, ProcessBackend
from ._replicas import Replica, RunResult
from ._stage import Stage
from ._stats import bottleneck

__all__ = ["Backend", "Executor", "InferResult", "LocalBackend", "ProcessBackend", "Replica", "RunResult", "Stage",
           "StageRunner",
           "bottleneck"]
