"""The user's picture of a pipeline and its compilation into a Plan."""

from ._compile import compile_plan
from ._nodes import brick, function, http, onnx, sklearn, torch, transformers
from ._plan import Plan, StagePlan
from ._steps import (
    Ensemble,
    Fallback,
    Graph,
    Node,
    Parallel,
    Sequence_,
    Step,
    Switch,
    ensemble,
    fallback,
    graph,
    parallel,
    switch,
)

__all__ = [
    "Ensemble", "Fallback", "Graph", "Node", "Parallel", "Plan", "Sequence_", "StagePlan",
    "Step", "Switch", "brick", "compile_plan", "ensemble", "fallback", "function", "graph",
    "http", "onnx", "parallel", "sklearn", "switch", "torch", "transformers",
]
