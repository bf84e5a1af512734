"""The model bricks of a pipeline file, read without compiling the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MODEL_KINDS", "make_brick", "model_bricks", "pipeline_doc"]

MODEL_KINDS = ("onnx", "torch", "sklearn")


def pipeline_doc(path: Path) -> dict[str, Any]:
    """The file's mapping, once ``load_graph`` has accepted it (only ``bricks`` and ``defaults``
    are read from it, so YAML 1.1's reading of ``on:`` elsewhere does not matter)."""
    from ..graph import load_graph

    load_graph(path)
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


def model_bricks(doc: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{name: (kind, entry)}`` for the onnx, torch and sklearn bricks."""
    out = {}
    for name, entry in doc["bricks"].items():
        kind = next((k for k in MODEL_KINDS if k in entry), None)
        if kind is not None:
            out[name] = (kind, dict(entry))
    return out


def make_brick(kind: str, entry: Mapping[str, Any], base_dir: Path, name: str) -> Any:
    """The brick an entry describes, built as the pipeline file would build it."""
    from ..bricks import kind_class

    config = {k: v for k, v in entry.items() if k not in ("rename", "fallback", "health_timeout_s")}
    return kind_class(kind).from_config(config, base_dir, name)
