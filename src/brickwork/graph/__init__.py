"""The user's picture of a pipeline and its compilation into a Plan."""

from ..plan import Plan, StagePlan
from ._compile import compile_plan
from ._dump import dump_graph, render
from ._nodes import brick, cast, function, http, onnx, sklearn, torch, transformers
from ._picture import Picture, draw, to_png, to_svg
from ._schema import json_schema, json_schema_text, reference_markdown
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
    group,
    parallel,
    switch,
)
from ._yaml import PipelineFile, load_graph, load_pipeline, parse_pipeline

__all__ = [
    "Ensemble", "Fallback", "Graph", "Node", "Parallel", "Picture", "PipelineFile", "Plan", "Sequence_",
    "StagePlan", "Step", "Switch", "brick", "cast", "compile_plan", "draw", "dump_graph", "ensemble",
    "fallback", "function", "graph", "group", "http", "json_schema", "json_schema_text",
    "load_graph", "load_pipeline", "onnx", "parallel", "parse_pipeline", "reference_markdown",
    "render", "sklearn", "switch", "to_png", "to_svg", "torch", "transformers",
]
