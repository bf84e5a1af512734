"""From the trained weights to a pipeline ``brickwork serve`` serves: one ``onnx:`` brick."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ._config import FedConfig
from ._messages import ExportRes

__all__ = ["write_pipeline"]


def write_pipeline(config: FedConfig, exported: ExportRes) -> str | None:
    """Write ``config.export.pipeline`` (a YAML with the ONNX file as its one brick); its path."""
    if config.export is None or config.export.pipeline is None:
        return None
    target = config.path(config.export.pipeline)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx = Path(exported.path).resolve()
    rel = os.path.relpath(onnx, target.parent.resolve())
    doc: dict[str, object] = {
        "name": config.name,
        "description": f"exported by `brickwork fed run` after federated training ({config.client})",
        "bricks": {"model": {"onnx": rel}},
        "graph": "model",
    }
    if exported.example:
        doc["example"] = {k: v for k, v in exported.example.items()}
    header = (f"# {config.name}: the federated model, served with\n"
              f"#   brickwork serve {target.name}\n")
    target.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120))
    return str(target)
