"""Factories that place bricks in a graph: ``bw.function``, ``bw.onnx``, ``bw.sklearn``, …

Each returns a :class:`Node`; keyword options (``replicas``, ``batching``, ``worker``,
``device``, ``timeout_s``, ``retries``, ``breaker``, …) become its stage options.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..bricks import Brick
from ..errors import ConfigError
from ..options import StageOptions
from ._steps import Node

__all__ = ["brick", "function", "http", "onnx", "sklearn", "torch", "transformers"]


def brick(b: Brick, *, name: str | None = None, **options: Any) -> Node:
    """Place any object following the :class:`~brickwork.Brick` protocol in a graph."""
    for attr in ("signature", "load", "warmup", "close"):
        if not hasattr(b, attr):
            raise ConfigError(f"{b!r} is not a brick: it has no {attr!r}")
    node_name = name or b.name
    if name and getattr(b, "name", None) != name:
        b.name = name
    stage_options = StageOptions().updated(**options)
    place(b, stage_options)
    return Node(b, node_name, options=stage_options)


def place(b: Brick, options: StageOptions) -> None:
    """Tell the brick its device before anything loads it (compile() reads signatures, which
    may load the model), so execution providers / torch devices follow the stage's device."""
    if options.device != "cpu" or hasattr(b, "device"):
        try:
            b.device = options.device  # type: ignore[attr-defined]
        except AttributeError:  # a read-only attribute on a third-party brick
            pass


def function(fn: Callable[..., Any] | str, *, name: str | None = None, batch: bool = False,
             inputs: Any = None, outputs: Any = None, rowwise: bool = True,
             blocking: bool = False, **options: Any) -> Node:
    """A Python function as a brick; see :mod:`brickwork.bricks.function` for the hint rules.
    ``batch=True``: the function takes and returns whole arrays. ``rowwise=False``: its
    output item count differs from its input's (never merged with other requests).
    ``blocking=True``: run it on a worker thread instead of the event loop."""
    from ..bricks.function import FunctionBrick

    return brick(FunctionBrick(fn, name=name, batch=batch, inputs=inputs, outputs=outputs,
                               rowwise=rowwise, blocking=blocking), **options)


def onnx(path: str | Path, *, name: str | None = None, providers: Any = None,
         intra_op_threads: int | None = None, inter_op_threads: int | None = None,
         optimization: str = "all", **options: Any) -> Node:
    """An ONNX model run by ONNX Runtime; the signature is read from the model."""
    from ..bricks.onnx import OnnxBrick

    b = OnnxBrick(path, name=name, providers=providers, intra_op_threads=intra_op_threads,
                  inter_op_threads=inter_op_threads, optimization=optimization,
                  device=options.get("device", "cpu"))
    return brick(b, **options)


def sklearn(model: Any, *, name: str | None = None, method: str = "predict",
            to_onnx: bool = False, n_features: int | None = None, sample: Any = None,
            parity_atol: float = 1e-4, **options: Any) -> Node:
    """A scikit-learn estimator (object or a joblib/pickle file path *you* trust).
    With ``to_onnx=True``, ``sample`` rows check the conversion's parity within
    ``parity_atol``."""
    from ..bricks.sklearn import SklearnBrick

    return brick(SklearnBrick(model, name=name, method=method, to_onnx=to_onnx,
                              n_features=n_features, sample=sample, parity_atol=parity_atol),
                 **options)


def torch(module: Any, *, inputs: Any, outputs: Any, name: str | None = None,
          **options: Any) -> Node:
    """A torch ``nn.Module`` (or a TorchScript file) with a declared signature."""
    from ..bricks.torch import TorchBrick

    return brick(TorchBrick(module, inputs=inputs, outputs=outputs, name=name,
                            device=options.get("device", "cpu")), **options)


def transformers(path: str | Path, *, task: str, name: str | None = None,
                 **options: Any) -> Node:
    """A Hugging Face ``transformers`` pipeline loaded from a local directory."""
    from ..bricks.transformers import TransformersBrick

    return brick(TransformersBrick(path, task=task, name=name), **options)


def http(url: str | list[str], *, name: str | None = None, **config: Any) -> Node:
    """A model behind HTTP: an Open Inference Protocol server (``model=``) or a plain JSON
    endpoint with a declared mapping; see :mod:`brickwork.bricks.http`."""
    from ..bricks.http import make_http_brick

    options = {k: config.pop(k) for k in list(config) if k in _OPTION_KEYS}
    return brick(make_http_brick(url, name=name, **config), **options)


_OPTION_KEYS = {"replicas", "batching", "worker", "device", "policy", "timeout_s", "retries",
                "retry_budget", "breaker", "retry_on", "health_timeout_s", "hedge_after_s",
                "hedge_budget"}
