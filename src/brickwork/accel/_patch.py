"""Point a brick of a pipeline file at another ONNX file, keeping the rest of the text.

For an ``onnx`` brick only the path's characters change (comments and layout stay); extra
brick options (``device: cuda`` for a GPU variant) are added next to it. A torch or sklearn
brick becomes an ``onnx`` brick: its entry is rewritten (its stage options kept).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["patch_text", "unified_diff"]

_NOT_BRICK = frozenset({"rename", "fallback", "batching", "replicas", "worker", "timeout_s", "retries",
                        "retry_budget", "breaker", "retry_on", "health_timeout_s", "policy", "name"})


def _find(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def patch_text(text: str, brick: str, model: Path, *, base_dir: Path,
               options: Mapping[str, Any] | None = None) -> str:
    """The pipeline file's text with brick ``brick`` running ``model`` (plus ``options``)."""
    root = yaml.compose(text)
    bricks = _find(root, "bricks") if isinstance(root, yaml.MappingNode) else None
    entry = _find(bricks[1], brick) if bricks and isinstance(bricks[1], yaml.MappingNode) else None
    if entry is None or not isinstance(entry[1], yaml.MappingNode):
        raise ConfigError(f"no brick {brick!r} under 'bricks' in the pipeline file")
    node = entry[1]
    rel = os.path.relpath(model.resolve(), base_dir.resolve())
    onnx = _find(node, "onnx")
    options = dict(options or {})
    if onnx is not None:
        start, end = onnx[1].start_mark.index, onnx[1].end_mark.index
        extra = ""
        for key, value in options.items():
            found = _find(node, key)
            if found is not None:  # replaced in place, later edits first: do it by recursion
                text = text[: found[1].start_mark.index] + _scalar(value) + text[found[1].end_mark.index:]
                return patch_text(text, brick, model, base_dir=base_dir,
                                  options={k: v for k, v in options.items() if k != key})
            if node.flow_style:
                extra += f", {key}: {_scalar(value)}"
            else:
                indent = " " * onnx[0].start_mark.column
                extra += f"\n{indent}{key}: {_scalar(value)}"
        return text[:start] + _scalar(rel) + extra + text[end:]
    # a torch/sklearn brick: a new flow mapping with the stage options kept
    data = yaml.safe_load(text)["bricks"][brick]
    kept = {k: v for k, v in data.items() if k in _NOT_BRICK}
    new = {"onnx": rel, **options, **kept}
    flow = "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in new.items()) + "}"
    start, end = node.start_mark.index, node.end_mark.index
    if not node.flow_style:  # a block mapping ends at the next key: keep the line break
        end = node.end_mark.index
        flow += "\n"
    return text[:start] + flow + text[end:]


def unified_diff(old: str, new: str, path: Path, new_path: Path) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=str(path), tofile=str(new_path)))
