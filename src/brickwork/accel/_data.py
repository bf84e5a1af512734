"""Calibration and evaluation data: named tensors for one brick, plus optional labels.

A ``.npz`` file (``numpy.savez``) or a JSON object ``{tensor name: nested list}``; every
array has the items along axis 0. In ``--eval`` data an array named ``label`` (or
``labels``) holds the expected class per item; it is not fed to the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..spec import Signature, to_numpy_dtype

__all__ = ["Dataset", "load_dataset"]

LABEL_KEYS = ("label", "labels")


@dataclass(frozen=True, slots=True)
class Dataset:
    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {k: v[start:stop] for k, v in self.inputs.items()}

    def batches(self, size: int) -> list[dict[str, np.ndarray]]:
        return [self.rows(i, i + size) for i in range(0, len(self), size)]


def _read(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "<arrays>"
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"data file {str(path)!r} does not exist; give a .npz (numpy.savez) or a "
                          "JSON object of tensor name to values")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}, str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"data file {str(path)!r} is neither .npz nor JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"data file {str(path)!r} must hold a JSON object of tensor name to values")
    return data, str(path)


def load_dataset(source: str | Path | Mapping[str, Any], signature: Signature, *, brick: str) -> Dataset:
    """The brick's inputs (cast to its declared dtypes) and labels, all with the same length."""
    raw, where = _read(source)
    missing = [n for n in signature.input_names if n not in raw]
    if missing:
        raise ConfigError(f"{where} has no {missing} for brick {brick!r}, which takes "
                          f"{list(signature.input_names)}; found {sorted(raw)}")
    inputs = {}
    for spec in signature.inputs:
        dtype = to_numpy_dtype(spec.dtype)
        inputs[spec.name] = np.ascontiguousarray(np.asarray(raw[spec.name]).astype(dtype, copy=False))
    label_key = next((k for k in LABEL_KEYS if k in raw), None)
    labels = np.asarray(raw[label_key]) if label_key else None
    lengths = {k: len(v) for k, v in inputs.items()} | ({"label": len(labels)} if labels is not None else {})
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ConfigError(f"{where}: every array needs the same, non-zero number of items; got {lengths}")
    return Dataset(inputs, labels, where)
