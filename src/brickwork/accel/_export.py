"""A model brick as one ONNX file, checked for parity with the brick itself.

ONNX bricks are used as they are. Torch bricks go through ``torch.onnx.export`` (batch and
other ``-1`` axes dynamic) and scikit-learn bricks through skl2onnx (``zipmap`` off); the file
keeps the brick's port names, so the pipeline around it does not change. The parity check runs
the original brick and the ONNX file on the same rows and reports the largest difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..spec import Tensors
from ._data import Dataset

__all__ = ["ExportResult", "check_parity", "export_onnx"]

PARITY_ROWS = 256


@dataclass(frozen=True, slots=True)
class ExportResult:
    """path: the ONNX file; exported: False when the brick already was ONNX.
    max_abs_diff: per output, the largest |brick - ONNX| on the parity rows (0.0 for ONNX bricks).
    mismatches: per integer/label output, how many items differ."""

    path: Path
    exported: bool
    max_abs_diff: dict[str, float]
    mismatches: dict[str, int]
    rows: int


def _run_onnx(path: Path, inputs: Tensors, outputs: list[str]) -> Tensors:
    import onnxruntime as ort

    from ..spec import dtype_of, to_numpy_dtype

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # a scikit-learn brick takes FP64 where its ONNX export takes FP32: feed each its own
    fed = {a.name: np.asarray(inputs[a.name]).astype(to_numpy_dtype(dtype_of(a.type)), copy=False)
           for a in session.get_inputs()}
    names = [n for n in outputs if n in {o.name for o in session.get_outputs()}]
    return dict(zip(names, session.run(names, fed), strict=True))


def check_parity(brick: Any, path: Path, data: Dataset, *,
                 tol: float = 1e-4) -> tuple[dict[str, float], dict[str, int]]:
    """Compare the brick with its ONNX file on up to PARITY_ROWS rows; refuse a drift over ``tol``
    (absolute, plus 1e-4 relative) in any float output."""
    rows = data.rows(0, PARITY_ROWS)
    want = brick(rows)
    have = _run_onnx(path, rows, list(want))
    diffs: dict[str, float] = {}
    mismatches: dict[str, int] = {}
    for name, ref in want.items():
        if name not in have:
            raise ConfigError(f"the ONNX export of brick {brick.name!r} has no output {name!r}")
        got = np.asarray(have[name]).reshape(np.shape(ref))
        if np.asarray(ref).dtype.kind == "f":
            diff = np.abs(got.astype(np.float64) - np.asarray(ref, dtype=np.float64))
            diffs[name] = float(np.nanmax(diff)) if diff.size else 0.0
            if not np.all(diff <= tol + 1e-4 * np.abs(ref)):
                raise ConfigError(f"the ONNX export of brick {brick.name!r} drifts from the brick: "
                                  f"max |Δ{name}| = {diffs[name]:.3g} > {tol:g} on {len(got)} rows")
        else:
            mismatches[name] = int(np.sum(got.astype(object) != np.asarray(ref).astype(object)))
    return diffs, mismatches


def _torch_export(brick: Any, path: Path, sample: Tensors) -> None:
    import torch

    brick.load()
    module = brick._live  # the loaded module (TorchBrick keeps it here)
    sig = brick.signature
    args = tuple(torch.from_numpy(np.ascontiguousarray(sample[s.name][:2])) for s in sig.inputs)
    axes = {s.name: {i: f"{s.name}_d{i}" for i, d in enumerate(s.shape) if d == -1}
            for s in (*sig.inputs, *sig.outputs)}
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=list(sig.input_names),
                          output_names=list(sig.output_names), dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def _sklearn_export(brick: Any, path: Path) -> None:
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    if brick.model is None:
        raise ConfigError(f"brick {brick.name!r} holds no scikit-learn model to export")
    options = {"zipmap": False} if getattr(brick.model, "classes_", None) is not None else None
    proto = to_onnx(brick.model, initial_types=[("features", FloatTensorType([None, brick.n_features]))],
                    options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    wanted = list(brick.signature.output_names)
    produced = [o.name for o in proto.graph.output]
    if not set(wanted) <= set(produced):  # e.g. a regressor's "variable" is our "prediction"
        if len(wanted) != 1:
            raise ConfigError(f"skl2onnx gave outputs {produced} for brick {brick.name!r}, "
                              f"which publishes {wanted}")
        proto = onnx.compose.add_prefix(proto, "")  # a copy
        for node in proto.graph.node:
            node.output[:] = [wanted[0] if o == produced[0] else o for o in node.output]
        proto.graph.output[0].name = wanted[0]
    keep = [o for o in proto.graph.output if o.name in wanted]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    path.write_bytes(proto.SerializeToString())


def export_onnx(brick: Any, data: Dataset, *, target: Path, write: bool = False) -> ExportResult:
    """The brick's ONNX file: its own for an ONNX brick, else exported to ``target`` and checked."""
    kind = getattr(brick, "kind", "?")
    if kind == "onnx":
        return ExportResult(Path(brick.path), False, {}, {}, 0)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if kind == "torch":
            _torch_export(brick, tmp, dict(data.inputs))
        elif kind == "sklearn":
            _sklearn_export(brick, tmp)
        else:
            raise ConfigError(f"brick {brick.name!r} is a {kind!r} brick; optimize takes onnx, torch "
                              "and sklearn bricks")
        diffs, mismatches = check_parity(brick, tmp, data)
        place(tmp, target, write=write)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(target, True, diffs, mismatches, min(len(data), PARITY_ROWS))


def place(src: Path, dst: Path, *, write: bool) -> None:
    """Move ``src`` to ``dst``; an existing, different ``dst`` is replaced only with ``write``."""
    if dst.exists() and dst.read_bytes() != src.read_bytes() and not write:
        raise ConfigError(f"{str(dst)!r} exists and differs; pass --write (write=True) to replace it")
    os.replace(src, dst)

