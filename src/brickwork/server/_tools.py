"""Pipelines as tools: a JSON Schema for one call of a pipeline, generated from its typed
signature, in the OpenAI tool format (``/v1/tools``) and for MCP (``brickwork mcp``).

A tool call is one item: each input is the item without the batch axis (BYTES → string, INT* →
integer, FP* → number, BOOL → boolean; fixed dimensions become arrays with min/max items,
dynamic ones arrays of any length). Descriptions come from the pipeline file's ``description``
and ``descriptions: {tensor: text}`` (kept on the Pipeline object), else from the signature.

An image input (UINT8, item shape (H, W) or (H, W, C) with C 1, 3 or 4) is a string instead: a
PNG or JPEG file, base64-encoded (a ``data:image/...;base64,`` prefix is accepted), decoded with
Pillow to that shape (grey, RGB or RGBA). An agent can attach a file as base64; it cannot write
a page as nested arrays (a 1000x800 RGB page is 2.4 million numbers, megabytes of tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..pipeline import Pipeline
from ..spec import TensorSpec

__all__ = ["call_tool", "input_schema", "openai_tools", "tool_description"]

_JSON_TYPE = {"BYTES": "string", "BOOL": "boolean"}


def _image_channels(spec: TensorSpec) -> int | None:
    """0 for an (H, W) image input, C for (H, W, C); None when ``spec`` is no image."""
    item = spec.shape[1:]
    if spec.dtype != "UINT8" or len(item) not in (2, 3):
        return None
    if len(item) == 3 and item[2] not in (1, 3, 4):
        return None
    return item[2] if len(item) == 3 else 0


def _item_schema(spec: TensorSpec, description: str | None = None, *, as_input: bool = False) -> dict[str, Any]:
    channels = _image_channels(spec) if as_input else None
    if channels is not None:
        mode = {0: "grey", 1: "grey", 3: "RGB", 4: "RGBA"}[channels]
        shown = f"uint8 {list(spec.shape[1:])} ({spec.name})"
        return {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png",
                "description": f"{description or shown}. A PNG or JPEG image, base64-encoded; "
                               f"read as {mode}"}
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
            "properties": {s.name: _item_schema(s, descriptions.get(s.name), as_input=True) for s in inputs},
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
        channels = _image_channels(specs[name])
        if channels is not None and isinstance(value, str):
            inputs[name] = _decode_image(specs[name], value, channels)[np.newaxis]
        elif specs[name].dtype == "BYTES":
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


MAX_IMAGE_PIXELS = 25_000_000  # a 24 MP camera frame fits; decoded RGB at most 75 MB


def _decode_image(spec: TensorSpec, value: str, channels: int) -> np.ndarray:
    import base64
    import binascii
    import io

    from ..errors import InvalidInput

    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"input {spec.name!r}: not base64 ({exc})") from exc
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is in the llm extra
        raise InvalidInput(f"input {spec.name!r}: decoding images needs Pillow (pip install pillow)") from exc
    try:
        with Image.open(io.BytesIO(data)) as image:
            # the header's size, checked before a pixel is decoded: a few KiB of PNG can
            # inflate to gigabytes (Pillow's own bomb limit is ~179 M pixels)
            width, height = image.size
            for axis, (want, got) in enumerate(zip(spec.shape[1:3], (height, width), strict=False)):
                if want != -1 and want != got:
                    raise InvalidInput(f"input {spec.name!r}: image {'height' if axis == 0 else 'width'} "
                                       f"is {got}, the pipeline takes {want}")
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidInput(f"input {spec.name!r}: image of {width}x{height} pixels, more than "
                                   f"{MAX_IMAGE_PIXELS:,} (brickwork.server._tools.MAX_IMAGE_PIXELS)")
            pixels = np.asarray(image.convert({0: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels]))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"input {spec.name!r}: not an image Pillow reads ({exc})") from exc
    if channels == 1:
        pixels = pixels[..., np.newaxis]
    for axis, (want, got) in enumerate(zip(spec.shape[1:3], pixels.shape, strict=False)):
        if want != -1 and want != got:
            raise InvalidInput(f"input {spec.name!r}: image {'height' if axis == 0 else 'width'} is {got}, "
                               f"the pipeline takes {want}")
    return pixels
