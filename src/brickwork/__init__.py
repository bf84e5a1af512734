"""brickwork: compose heterogeneous AI models into typed, batched, fault-tolerant pipelines.

    import brickwork as bw

    pipeline = (bw.function(tokenize) >> bw.onnx("model.onnx")).compile()
    pipeline.infer({"text": ["hello"]})
"""

from .accel import optimize
from .bricks import BaseBrick, Brick, BrickSpec, Tensor
from .engine import InferResult
from .errors import (
    BrickworkError,
    BuildError,
    ConfigError,
    DeadlineExceeded,
    FederatedError,
    GraphError,
    InterfaceMismatch,
    InvalidInput,
    ModelError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    SpecError,
    Unauthorized,
    UpstreamError,
    WorkerCrashed,
)
from .graph import (
    Graph,
    Node,
    Plan,
    Step,
    brick,
    cast,
    ensemble,
    fallback,
    function,
    graph,
    group,
    http,
    onnx,
    parallel,
    sklearn,
    switch,
    torch,
    transformers,
)
from .options import Batching, Breaker, FaultPolicy, StageOptions
from .pipeline import Pipeline
from .spec import Signature, TensorSpec

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``bw.federated`` is imported on first use, so ``import brickwork`` stays light."""
    if name == "federated":
        import importlib

        return importlib.import_module(".federated", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BaseBrick", "Batching", "Breaker", "Brick", "BrickSpec", "BrickworkError", "BuildError",
    "ConfigError", "DeadlineExceeded", "FaultPolicy", "FederatedError", "Graph", "GraphError", "InferResult",
    "InterfaceMismatch", "InvalidInput", "ModelError", "Node", "NotFound", "Overloaded",
    "PayloadTooLarge", "Pipeline", "Plan", "RequestError", "Signature", "SpecError",
    "StageOptions", "Step", "Tensor", "TensorSpec", "Unauthorized", "UpstreamError",
    "WorkerCrashed", "__version__", "brick", "cast", "ensemble", "fallback", "function", "graph",
    "group", "http", "onnx", "optimize", "parallel", "sklearn", "switch", "torch", "transformers",
]
