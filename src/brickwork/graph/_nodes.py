"""Factories that place bricks in a graph: ``bw.function``, ``bw.onnx``, ``bw.sklearn``, …

Each returns a :class:`Node`; keyword options (``replicas``, ``batching``, ``worker``,
``device``, ``timeout_s``, ``retries``, ``breaker``, …: :data:`brickwork.options.STAGE_KEYS`)
become its stage options. Each factory takes the keys of its kind's YAML entry (the brick
class's ``config_keys`` table) as keywords; a unit test holds the two together.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..bricks import Brick
from ..errors import ConfigError, SpecError
from ..options import STAGE_KEYS, StageOptions
from ._steps import Node

__all__ = ["brick", "cast", "function", "http", "onnx", "sklearn", "torch", "transformers"]


def brick(b: Brick, *, name: str | None = None, **options: Any) -> Node:
    """Place any object following the :class:`~brickwork.Brick` protocol in a graph."""
    for attr in ("signature", "load", "warmup", "close"):
        if not _has(b, attr):
            raise ConfigError(f"{b!r} is not a brick: it has no {attr!r}")
    node_name = name or b.name
    if name and getattr(b, "name", None) != name:
        b.name = name
    stage_options = StageOptions().updated(**options)
    place(b, stage_options)
    return Node(b, node_name, options=stage_options)


def _has(obj: Any, attr: str) -> bool:
    """hasattr (reading ``signature`` loads the model, so a bad one fails here), except that a
    signature known only once the graph compiles (a cast brick's) counts as present."""
    try:
        getattr(obj, attr)
    except AttributeError:
        return False
    except SpecError:
        inspect.getattr_static(obj, attr)
    return True


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
            parity_atol: float = 1e-4, onnx_options: dict[str, Any] | None = None,
            **options: Any) -> Node:
    """A scikit-learn estimator (object or a joblib/pickle file path *you* trust).
    With ``to_onnx=True``, ``sample`` rows check the conversion's parity within
    ``parity_atol``; ``onnx_options`` configure the ONNX Runtime session of the converted
    model (``providers``, ``intra_op_threads``, ``inter_op_threads``, ``optimization``)."""
    from ..bricks.sklearn import SklearnBrick

    return brick(SklearnBrick(model, name=name, method=method, to_onnx=to_onnx,
                              n_features=n_features, sample=sample, parity_atol=parity_atol,
                              onnx_options=onnx_options),
                 **options)


def torch(module: Any, *, inputs: Any, outputs: Any, name: str | None = None,
          **options: Any) -> Node:
    """A torch ``nn.Module`` (or a TorchScript file) with a declared signature."""
    from ..bricks.torch import TorchBrick

    return brick(TorchBrick(module, inputs=inputs, outputs=outputs, name=name,
                            device=options.get("device", "cpu")), **options)


def transformers(path: str | Path, *, task: str, name: str | None = None,
                 max_length: int | None = None, **options: Any) -> Node:
    """A Hugging Face ``transformers`` pipeline loaded from a local directory; ``max_length``
    truncates longer inputs (in tokens)."""
    from ..bricks.transformers import TransformersBrick

    return brick(TransformersBrick(path, task=task, name=name, max_length=max_length,
                                   device=options.get("device", "cpu")), **options)


def cast(targets: Any, *, name: str | None = None, inputs: Any = None, **options: Any) -> Node:
    """Cast tensors to other datatypes, losing precision but refusing values that do not fit
    (``bw.cast({"x": "FP32"})``): the step compile() asks for on a lossy edge. Each tensor keeps
    its name and shape; ``inputs`` declares the specs before the cast (default: the edge's).
    See :mod:`brickwork.bricks.cast`."""
    from ..bricks.cast import CastBrick

    return brick(CastBrick(targets, name=name, inputs=inputs), **options)


def http(url: str, *, name: str | None = None, **config: Any) -> Node:
    """A model behind HTTP: an Open Inference Protocol server (``model=``) or a plain JSON
    endpoint with a declared mapping; see :mod:`brickwork.bricks.http`."""
    from ..bricks.http import make_http_brick

    options = {k: config.pop(k) for k in list(config) if k in STAGE_KEYS | {"policy"}}
    return brick(make_http_brick(url, name=name, **config), **options)
