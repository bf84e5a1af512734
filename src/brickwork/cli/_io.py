"""Shared CLI helpers: read JSON inputs into tensors, print tensors as JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["read_inputs", "tensors_to_json"]


def read_inputs(text: str | None, file: str | None) -> dict[str, Any]:
    """``{"name": nested-list, ...}`` from ``--input`` text, ``--input-file`` path or ``-`` (stdin)."""
    if file is not None:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    if text is None:
        raise ConfigError("give the request with --input '{\"name\": [...]}' or --input-file FILE")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"input is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"input must be a JSON object of tensor name to values, found {type(data).__name__}")
    return data


def _plain(value: np.ndarray) -> Any:
    if value.dtype == object:
        return [_plain(v) if isinstance(v, np.ndarray)
                else (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for v in value]
    return value.tolist()


def tensors_to_json(tensors: Mapping[str, np.ndarray], extra: Mapping[str, Any] | None = None) -> str:
    out: dict[str, Any] = {name: _plain(np.asarray(v)) for name, v in tensors.items()}
    if extra:
        out.update(extra)
    return json.dumps(out, indent=2, ensure_ascii=False)
