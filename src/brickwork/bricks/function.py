"""Plain Python functions as bricks, with the signature read from type hints.

Two styles:

* per-item (default): ``def score(text: str, amount: float) -> float`` is called once per item
  of the batch with Python values; results are stacked.
* batch (``batch=True``): the function receives and returns whole arrays.

Hints map as: ``str``/``bytes`` → BYTES, ``int`` → INT64, ``float`` → FP64, ``bool`` → BOOL,
and ``Annotated[np.ndarray, bw.Tensor("FP32", (64,))]`` for arrays (the shape is per item, the
batch axis is added). A ``TypedDict`` or ``NamedTuple`` return type names several outputs;
a plain return type makes one output named after the function (or ``outputs=``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInput, ModelError, RequestError, SpecError
from ..spec import Signature, Tensors, TensorSpec, to_numpy_dtype
from ._base import TENSORS, BaseBrick, BrickSpec, ConfigKey, import_object, local_origin

__all__ = ["FunctionBrick", "Tensor", "infer_signature"]


@dataclass(frozen=True, slots=True)
class Tensor:
    """Type-hint metadata for an array parameter: ``Annotated[np.ndarray, Tensor("FP32", (64,))]``.
    ``shape`` is per item (without the batch axis)."""

    dtype: str
    shape: tuple[int, ...] = ()


_SCALARS: dict[Any, str] = {str: "BYTES", bytes: "BYTES", int: "INT64", float: "FP64", bool: "BOOL"}

SpecLike = TensorSpec | str | tuple[str, Any] | tuple[str, Any, Sequence[int]]


def _spec_from_hint(name: str, hint: Any, batch: bool, where: str) -> TensorSpec:
    if typing.get_origin(hint) is typing.Annotated:
        base, *meta = typing.get_args(hint)
        for m in meta:
            if isinstance(m, Tensor):
                return TensorSpec(name, m.dtype, (-1, *m.shape))
        hint = base
    if hint in _SCALARS and not batch:
        return TensorSpec(name, _SCALARS[hint], (-1,))
    raise SpecError(
        f"{where} {name!r}: cannot infer a tensor spec from type hint {hint!r}; annotate it as "
        f"str/bytes/int/float/bool or Annotated[np.ndarray, bw.Tensor('FP32', (dims...))], "
        f"or pass inputs=/outputs= explicitly"
    )


def _to_spec(item: SpecLike) -> TensorSpec:
    if isinstance(item, TensorSpec):
        return item
    if isinstance(item, tuple):
        return TensorSpec(*item)
    if isinstance(item, Mapping) and "name" in item:
        return TensorSpec(item["name"], item.get("datatype", item.get("dtype")), item.get("shape"))
    raise SpecError(f"expected a TensorSpec, (name, dtype[, shape]) or {{name, datatype, shape}}, "
                    f"got {item!r}")


def _specs(value: Any, default_name: str,
           typed: Callable[[str, int, int], TensorSpec] | None = None) -> list[TensorSpec]:
    """Normalise the ``inputs=``/``outputs=`` argument forms. A bare name has no datatype:
    ``typed(name, index, count)`` gives it one (from the function's hints) or refuses it;
    without ``typed`` (a torch brick's declared ports) it is FP64."""
    if isinstance(value, Mapping):
        return [TensorSpec(k, *(v if isinstance(v, tuple) else (v,))) for k, v in value.items()]
    if isinstance(value, str | TensorSpec) or (
        isinstance(value, tuple) and value and isinstance(value[0], str)
    ):
        value = [value]
    items = list(value)
    out = []
    for i, v in enumerate(items):
        if isinstance(v, str):
            out.append(typed(v, i, len(items)) if typed else TensorSpec(v, "FP64"))
        else:
            out.append(_to_spec(v))
    return out


def _untyped(where: str, name: str) -> SpecError:
    return SpecError(
        f"{where} {name!r} is declared without a datatype and the function's type hints give "
        f"none; declare it ({{name: {name}, datatype: FP32, shape: [-1]}} in YAML, "
        f"({name!r}, 'FP32') in Python) or annotate the function"
    )


def infer_signature(
    fn: Callable[..., Any],
    *,
    batch: bool,
    inputs: Any = None,
    outputs: Any = None,
    name: str,
    output_name: str | None = None,
) -> tuple[Signature, list[str]]:
    """The signature of ``fn`` from its hints (overridden by explicit specs) and the names of
    its output fields in return order. A single unnamed output is called ``output_name``
    (the function's own name)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params = [
        p for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    def typed_input(n: str, i: int, count: int) -> TensorSpec:
        hint = hints.get(n, inspect.Parameter.empty)
        if hint is inspect.Parameter.empty:
            raise _untyped(f"brick {name!r} input", n)
        return _spec_from_hint(n, hint, batch, f"brick {name!r} input")

    ret = hints.get("return", inspect.Parameter.empty)

    def typed_output(n: str, i: int, count: int) -> TensorSpec:
        hint = _output_hint(ret, n, i, count)
        if hint is inspect.Parameter.empty:
            raise _untyped(f"brick {name!r} output", n)
        return _spec_from_hint(n, hint, batch, f"brick {name!r} output")

    if inputs is not None:
        in_specs = _specs(inputs, name, typed_input)
    else:
        in_specs = [
            _spec_from_hint(p.name, hints.get(p.name, inspect.Parameter.empty), batch,
                            f"brick {name!r} parameter")
            for p in params
        ]
    if outputs is not None:
        out_specs = _specs(outputs, name, typed_output)
    elif typing.is_typeddict(ret) or (isinstance(ret, type) and hasattr(ret, "_fields")):
        fields = typing.get_type_hints(ret, include_extras=True)
        out_specs = [_spec_from_hint(k, v, batch, f"brick {name!r} output") for k, v in fields.items()]
    else:
        out_specs = [_spec_from_hint(output_name or name, ret, batch, f"brick {name!r} return value")]
    return Signature(in_specs, out_specs), [s.name for s in out_specs]


def _output_hint(ret: Any, name: str, index: int, count: int) -> Any:
    """The type hint of output ``name`` (position ``index`` of ``count``) in a return hint: a
    TypedDict/NamedTuple field, an element of ``tuple[...]``, or the whole hint for one output."""
    empty = inspect.Parameter.empty
    if ret is empty:
        return empty
    if typing.is_typeddict(ret) or (isinstance(ret, type) and hasattr(ret, "_fields")):
        fields = typing.get_type_hints(ret, include_extras=True)
        if name in fields:
            return fields[name]
        return list(fields.values())[index] if len(fields) == count else empty
    if typing.get_origin(ret) is tuple and count > 1:
        args = typing.get_args(ret)
        return args[index] if len(args) == count else empty
    return ret if count == 1 else empty


def _item(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


class FunctionBrick(BaseBrick):
    kind = "python"
    config_keys = (
        ConfigKey("python", {"type": "string", "pattern": "^[^:]+:[^:]+$"},
                  "``module:function``; the module is found beside the pipeline file", required=True),
        ConfigKey("batch", {"type": "boolean"},
                  "the function takes and returns whole arrays; default false (once per item)"),
        ConfigKey("inputs", TENSORS, "input ports; a bare name takes its type from the "
                  "parameter's hint; default: the parameters' hints"),
        ConfigKey("outputs", TENSORS, "output ports; a bare name takes its type from the return "
                  "hint (refused when there is none); default: the return hint"),
        ConfigKey("rowwise", {"type": "boolean"}, "false: the output item count differs from "
                  "the input's (never merged with other requests); default true"),
        ConfigKey("blocking", {"type": "boolean"},
                  "run on a worker thread instead of the event loop; default false"),
    )

    def __init__(
        self,
        fn: Callable[..., Any] | str,
        *,
        name: str | None = None,
        batch: bool = False,
        inputs: Any = None,
        outputs: Any = None,
        rowwise: bool = True,
        blocking: bool = False,
        base_dir: str | Path | None = None,
    ) -> None:
        self._target = fn if isinstance(fn, str) else None
        self._base_dir = str(base_dir) if base_dir is not None else "."
        if isinstance(fn, str) and base_dir is not None:
            _on_path(Path(base_dir))
        func: Callable[..., Any] = import_object(fn, base_dir=base_dir) if isinstance(fn, str) else fn
        if not callable(func):
            raise ConfigError(f"{fn!r} is not callable")
        brick_name: str = name or str(getattr(func, "__name__", "function"))
        sig, self._out_names = infer_signature(
            func, batch=batch, inputs=inputs, outputs=outputs, name=brick_name,
            output_name=getattr(func, "__name__", brick_name),
        )
        super().__init__(brick_name, sig)
        self.fn = func
        self.batch = batch
        self.rowwise = rowwise
        self.blocking = blocking
        self._explicit = {"inputs": inputs, "outputs": outputs}
        self._text = {s.name: _expects_str(func, s.name) for s in sig.inputs if s.dtype == "BYTES"}
        self._out_dtypes = {s.name: s.dtype for s in sig.outputs}

    # -- calling ---------------------------------------------------------------
    def _call(self, inputs: Tensors) -> Tensors:
        if self.batch:
            return self._call_batch(inputs)
        return self._call_items(inputs)

    def _call_batch(self, inputs: Tensors) -> Tensors:
        try:
            result = self.fn(**inputs)
        except RequestError:
            raise
        except Exception as exc:
            raise ModelError(f"brick {self.name!r} raised {type(exc).__name__}: {exc}") from exc
        return self._collect([result], batched=True)

    def _call_items(self, inputs: Tensors) -> Tensors:
        names = list(inputs)
        n = len(next(iter(inputs.values()))) if inputs else 1
        results = []
        for i in range(n):
            kwargs = {k: self._decode(k, _item(inputs[k][i])) for k in names}
            try:
                results.append(self.fn(**kwargs))
            except RequestError:
                raise
            except Exception as exc:
                raise ModelError(
                    f"brick {self.name!r} raised {type(exc).__name__} on item {i}: {exc}"
                ) from exc
        return self._collect(results, batched=False)

    def _decode(self, name: str, value: Any) -> Any:
        if self._text.get(name) and isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"input {name!r} of brick {self.name!r} is not UTF-8 text") from exc
        return value

    def _collect(self, results: list[Any], *, batched: bool) -> Tensors:
        names = self._out_names
        columns: dict[str, list[Any]] = {n: [] for n in names}
        for r in results:
            if isinstance(r, Mapping):
                missing = [n for n in names if n not in r]
                if missing:
                    raise ModelError(f"brick {self.name!r} returned no {missing}; got {list(r)}")
                for n in names:
                    columns[n].append(r[n])
            elif len(names) > 1:
                if not isinstance(r, tuple | list) or len(r) != len(names):
                    raise ModelError(
                        f"brick {self.name!r} must return {len(names)} values {names}, got {r!r}"
                    )
                for n, v in zip(names, r, strict=True):
                    columns[n].append(v)
            else:
                columns[names[0]].append(r)
        out: Tensors = {}
        for n, values in columns.items():
            value = values[0] if batched else values
            out[n] = _as_array(value, self._out_dtypes[n], self.name, n)
        return out

    # -- recipe ----------------------------------------------------------------
    def spec(self) -> BrickSpec:
        target, base_dir = self._target, self._base_dir
        if target is None:
            target = _importable_name(self.fn)
            origin = local_origin(target.partition(":")[0]) if target else None
            if target is not None and origin is not None:  # loaded from a pipeline's folder
                target, base_dir = f"{origin[0]}:{target.partition(':')[2]}", origin[1]
        if target is None:
            return super().spec()
        config: dict[str, Any] = {"python": target}
        if self.batch:
            config["batch"] = True
        if not self.rowwise:
            config["rowwise"] = False
        if self.blocking:
            config["blocking"] = True
        for key, value in self._explicit.items():
            if value is not None:  # the resolved specs: a bare name's dtype comes from the type hints
                side = self.signature.inputs if key == "inputs" else self.signature.outputs
                config[key] = [s.to_dict() for s in side]
        return BrickSpec(self.kind, self.name, config, base_dir)

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> FunctionBrick:
        allowed = {k.name for k in cls.config_keys}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigError(f"unknown python brick field(s) {unknown}; fields are {sorted(allowed)}")
        def specs(key: str) -> Any:
            value = config.get(key)
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return [TensorSpec(v["name"], v.get("datatype", v.get("dtype")), v.get("shape"))
                        for v in value]
            return value

        return cls(
            config["python"], name=name, batch=bool(config.get("batch", False)),
            inputs=specs("inputs"), outputs=specs("outputs"),
            rowwise=bool(config.get("rowwise", True)), blocking=bool(config.get("blocking", False)),
            base_dir=base_dir,
        )


def _on_path(base_dir: Path) -> None:
    """Let a module beside the pipeline file import its siblings by absolute name (``import
    helpers``). The module the YAML names is itself loaded per folder by ``import_object``; a
    sibling imported by absolute name is one module per process (import it relatively,
    ``from . import helpers``, to keep it per folder too)."""
    import sys

    path = str(base_dir.resolve())
    if path not in sys.path:
        sys.path.insert(0, path)


def _expects_str(fn: Callable[..., Any], param: str) -> bool:
    hint = typing.get_type_hints(fn).get(param)
    return hint is not bytes


def _importable_name(fn: Any) -> str | None:
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        return None
    return f"{module}:{qualname}"


def _as_array(value: Any, dtype: str, brick: str, name: str) -> np.ndarray:
    if dtype == "BYTES":
        arr = np.empty(len(value), dtype=object) if isinstance(value, list) else None
        if arr is not None:
            arr[:] = value
            return arr
        return np.asarray(value, dtype=object)
    try:
        return np.asarray(value, dtype=to_numpy_dtype(dtype))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"brick {brick!r} output {name!r} is not {dtype}: {exc}") from exc
