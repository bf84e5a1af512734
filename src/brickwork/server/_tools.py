"""Pipelines as tools: a JSON Schema for one call of a pipeline, generated from its typed
signature, in the OpenAI tool format (``/v1/tools``) and for MCP (``brickwork mcp``).

A tool call is one item: each input is the item without the batch axis (BYTES → string, INT* →
integer, FP* → number, BOOL → boolean; fixed dimensions become arrays with min/max items,
dynamic ones arrays of any length). Descriptions come from a ``description`` attribute (and a
``descriptions: {tensor: text}`` mapping) set on the Pipeline object when present, else from the
signature; the YAML file has no keys for them yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..pipeline import Pipeline
from ..spec import TensorSpec

__all__ = ["call_tool", "input_schema", "openai_tools", "tool_description"]

_JSON_TYPE = {"BYTES": "string", "BOOL": "boolean"}


def _item_schema(spec: TensorSpec, description: str | None = None) -> dict[str, Any]:
    kind = _JSON_TYPE.get(spec.dtype, "integer" if "INT" in spec.dtype else "number")
    schema: dict[str, Any] = {"type": kind}
    for dim in reversed(spec.shape[1:]):
        schema = {"type": "array", "items": schema}
        if dim != -1:
            schema["minItems"] = schema["maxItems"] = dim
    schema["description"] = description or f"{spec.dtype} {list(spec.shape[1:]) or 'scalar'} ({spec.name})"
    return schema


def input_schema(pipeline: Pipeline) -> dict[str, Any]:
    descriptions = getattr(pipeline, "descriptions", None) or {}
    inputs = pipeline.plan.inputs
    return {"type": "object",
            "properties": {s.name: _item_schema(s, descriptions.get(s.name)) for s in inputs},
            "required": [s.name for s in inputs], "additionalProperties": False}


def output_schema(pipeline: Pipeline) -> dict[str, Any]:
    descriptions = getattr(pipeline, "descriptions", None) or {}
    outputs = pipeline.plan.outputs
    return {"type": "object",
            "properties": {s.name: _item_schema(s, descriptions.get(s.name)) for s in outputs},
            "required": [s.name for s in outputs]}


def tool_description(pipeline: Pipeline) -> str:
    given = getattr(pipeline, "description", None)
    return str(given) if given else f"brickwork pipeline {pipeline.name!r}: {pipeline.plan.signature}"


def openai_tools(pipelines: Mapping[str, Pipeline]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": name, "description": tool_description(p),
                                              "parameters": input_schema(p)}}
            for name, p in pipelines.items()]


async def call_tool(pipeline: Pipeline, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Run one item through the normal engine (batching, policies); JSON-able outputs."""
    from ..errors import InvalidInput

    specs = {s.name: s for s in pipeline.plan.inputs}
    unknown = sorted(set(arguments) - set(specs))
    missing = sorted(set(specs) - set(arguments))
    if unknown or missing:
        raise InvalidInput(f"tool {pipeline.name!r} takes {sorted(specs)}; unknown {unknown}, missing {missing}")
    inputs: dict[str, Any] = {}
    for name, value in arguments.items():
        if specs[name].dtype == "BYTES":
            arr = np.empty((1,), dtype=object)
            arr[0] = value
            inputs[name] = arr
        else:
            inputs[name] = [value]
    out = await pipeline.ainfer(inputs)
    result: dict[str, Any] = {}
    for name, value in out.items():
        item = value[0]
        result[name] = item.tolist() if isinstance(item, np.ndarray) else (
            item.decode("utf-8", "replace") if isinstance(item, bytes) else
            item.item() if isinstance(item, np.generic) else item)
    if out.rungs:
        result["_rungs"] = dict(out.rungs)
    return result
