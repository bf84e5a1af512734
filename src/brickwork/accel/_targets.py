"""``export_brick``: one brick of a pipeline file as an ONNX file or a browser folder."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..bricks import sample_inputs
from ..errors import ConfigError
from ._data import load_dataset
from ._export import export_onnx
from ._pipeline import make_brick, model_bricks, pipeline_doc
from ._web import WebExport, export_web

__all__ = ["TARGETS", "export_brick"]

TARGETS = ("onnx", "web")


def export_brick(pipeline: str | Path, *, brick: str, target: str, out: str | Path,
                 data: str | Path | Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None,
                 write: bool = False, cache: str | Path | None = None) -> WebExport | Path:
    """target "onnx": the brick's model as ``out`` (a file; torch/sklearn bricks are exported and
    checked for parity on ``data``, else on generated rows). target "web": ``out`` is a folder
    with the model and a page that runs it (see :func:`export_web`); ``inputs`` (default: the
    pipeline file's ``example`` where it holds the brick's inputs) become ``inputs.json``."""
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {list(TARGETS)}, got {target!r}")
    path = Path(pipeline)
    doc = pipeline_doc(path)
    models = model_bricks(doc)
    if brick not in models:
        raise ConfigError(f"brick {brick!r} is not an onnx, torch or sklearn brick of {str(path)!r}; "
                          f"those are {sorted(models)}")
    kind, entry = models[brick]
    live = make_brick(kind, entry, path.parent, brick)
    live.load()
    rows: Any = data if data is not None else sample_inputs(live.signature, batch_size=8, dynamic=4)
    if data is None and kind != "onnx":
        rng = np.random.default_rng(0)
        rows = {k: (rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f" else v)
                for k, v in rows.items()}
    dataset = load_dataset(rows, live.signature, brick=brick)
    out_path = Path(out)
    onnx_file = out_path if target == "onnx" else out_path / "model.onnx"
    if target == "web":
        onnx_file = Path(str(out_path).rstrip("/") + ".export.onnx") if kind != "onnx" else onnx_file
    result = export_onnx(live, dataset, target=onnx_file, write=write)
    if target == "onnx":
        if not result.exported:
            if out_path.exists() and out_path.read_bytes() != result.path.read_bytes() and not write:
                raise ConfigError(f"{str(out_path)!r} exists and differs; pass --write to replace it")
            shutil.copyfile(result.path, out_path)
        return out_path
    example = doc.get("example") or {}
    if inputs is None and all(n in example for n in live.signature.input_names):
        inputs = {n: example[n] for n in live.signature.input_names}
    try:
        return export_web(result.path, out_path, name=brick, inputs=inputs, cache=cache, write=write)
    finally:
        if result.exported:
            result.path.unlink(missing_ok=True)
