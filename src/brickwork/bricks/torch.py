"""PyTorch modules as bricks, with a declared signature.

``inputs``/``outputs`` take the same forms as a function brick's: a list of
:class:`~brickwork.TensorSpec`, ``(name, dtype[, shape])`` tuples, or ``{name: dtype}`` /
``{name: (dtype, shape)}``; shapes include the batch axis. The module is called with the input
tensors in declared order and may return one tensor, a tuple/list (matched to ``outputs`` in
order) or a dict (matched by name). It runs in eval mode under ``torch.inference_mode()`` on
``device``. A path is loaded as a ``torch.export`` program when it ends in ``.pt2``, else as
TorchScript (``torch.jit.save``); torch is imported only when the brick loads.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInput, ModelError, RequestError
from ..spec import Signature, Tensors, TensorSpec, dtype_of, to_numpy_dtype
from ._base import PATH, TENSORS, BaseBrick, BrickSpec, ConfigKey, lazy_import
from .function import _specs
from .onnx import config_options, resolve_path

__all__ = ["TorchBrick"]

log = logging.getLogger("brickwork.bricks.torch")


def _spec_list(value: Any, where: str) -> list[TensorSpec]:
    if value is None:
        raise ConfigError(f"a torch brick needs {where}= (its ports cannot be read from a module)")
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return [TensorSpec(v["name"], v.get("datatype", v.get("dtype")), v.get("shape"))
                for v in value]
    if isinstance(value, Mapping):  # YAML gives {x: [FP32, [-1, 4]]}: lists, not tuples
        value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    def untyped(name: str, index: int, count: int) -> TensorSpec:
        raise ConfigError(f"torch brick {where} {name!r} is declared without a datatype (a module "
                          f"has no type hints to take it from): give one, e.g. {{{name!r}: 'FP32'}}")

    specs = _specs(value, where, untyped)
    for s in specs:
        if s.dtype == "BYTES":
            raise ConfigError(f"torch brick {where} {s.name!r} is BYTES; torch has no string "
                              "tensors: tokenize or encode in a brick before it")
        to_numpy_dtype(s.dtype)  # refuses BF16 ports with the fix
    return specs


class TorchBrick(BaseBrick):
    """A ``torch.nn.Module`` (or a TorchScript file) as a brick.

    inputs / outputs: the declared ports (see the module docstring for the forms).
    device: "cpu" or "cuda[:N]". Default "cpu".
    """

    kind = "torch"
    config_keys = (
        ConfigKey("torch", PATH, "a TorchScript or ``torch.export`` file", required=True),
        ConfigKey("inputs", TENSORS, "the declared input ports", required=True),
        ConfigKey("outputs", TENSORS, "the declared output ports", required=True),
        ConfigKey("pickled", {"type": "boolean"}, "the file is a ``torch.save`` of the module "
                  "(written by ``dump_graph``; load only files you trust)"),
    )

    def __init__(
        self,
        module_or_path: Any,
        *,
        inputs: Any,
        outputs: Any,
        name: str | None = None,
        device: str = "cpu",
    ) -> None:
        self._path: Path | None = None
        self._module: Any = None
        if isinstance(module_or_path, str | Path):
            self._path = Path(module_or_path).expanduser().resolve()
            if not self._path.is_file():
                raise ConfigError(f"TorchScript file {str(module_or_path)!r} does not exist")
            default_name = self._path.stem
        elif callable(module_or_path):
            self._module = module_or_path
            default_name = type(module_or_path).__name__.lower()
        else:
            raise ConfigError(f"expected a torch.nn.Module or a TorchScript path, got "
                              f"{type(module_or_path).__name__}")
        if not (device == "cpu" or device.startswith("cuda")):
            raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        sig = Signature(_spec_list(inputs, "inputs"), _spec_list(outputs, "outputs"))
        super().__init__(name or default_name, sig)
        self.device = device
        self._pickled = False
        self._tmp: str | None = None
        self._live: Any = None  # the module placed on the device, set by load()

    # -- loading ---------------------------------------------------------------------
    def _load(self) -> None:
        torch = lazy_import("torch", "torch")
        module = self._module
        if module is None:
            assert self._path is not None
            try:
                if self._pickled:  # written by spec() from the user's own module
                    module = torch.load(self._path, map_location="cpu", weights_only=False)
                elif self._path.suffix == ".pt2":
                    module = torch.export.load(str(self._path)).module()
                else:
                    module = torch.jit.load(str(self._path), map_location="cpu")
            except Exception as exc:
                raise ConfigError(f"cannot load torch model {str(self._path)!r} for brick "
                                  f"{self.name!r}: {exc}") from exc
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"brick {self.name!r} asks for device {self.device!r}, but torch "
                              "sees no CUDA device; use device='cpu'")
        if hasattr(module, "to"):
            module = module.to(self.device)
        if hasattr(module, "eval") and not isinstance(module, torch.fx.GraphModule):
            module.eval()  # an exported program's module has its mode baked in
        self._torch = torch
        self._live = module
        log.info("brick %r: torch module on %s", self.name, self.device)

    def close(self) -> None:
        self._live = None
        super().close()

    # -- calling ---------------------------------------------------------------------
    def _call(self, inputs: Tensors) -> Tensors:
        torch = self._torch
        sig = self.signature
        args = []
        for spec in sig.inputs:
            if spec.name not in inputs:
                raise InvalidInput(f"brick {self.name!r} needs input {spec.name!r}; "
                                   f"got {sorted(inputs)}")
            array = spec.check(inputs[spec.name], where=f"brick {self.name!r} input")
            if not array.flags.writeable:  # torch wants writable memory to share it
                array = array.copy()
            args.append(torch.from_numpy(np.ascontiguousarray(array)).to(self.device))
        try:
            with torch.inference_mode():
                result = self._live(*args)
        except RequestError:
            raise
        except Exception as exc:
            raise ModelError(f"brick {self.name!r} (torch) raised {type(exc).__name__}: "
                             f"{exc}") from exc
        return self._collect(result)

    def _collect(self, result: Any) -> Tensors:
        names = self.signature.output_names
        if isinstance(result, Mapping):
            missing = [n for n in names if n not in result]
            if missing:
                raise ModelError(f"brick {self.name!r} returned no {missing}; got {list(result)}")
            values = [result[n] for n in names]
        elif isinstance(result, tuple | list):
            if len(result) != len(names):
                raise ModelError(f"brick {self.name!r} returned {len(result)} values for the "
                                 f"{len(names)} declared outputs {list(names)}")
            values = list(result)
        else:
            values = [result]
            if len(names) != 1:
                raise ModelError(f"brick {self.name!r} returned one tensor for the "
                                 f"{len(names)} declared outputs {list(names)}")
        out: Tensors = {}
        for spec, value in zip(self.signature.outputs, values, strict=True):
            array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            got = dtype_of(array.dtype)
            if got != spec.dtype:
                raise ModelError(f"brick {self.name!r} output {spec.name!r} is {got}, but its "
                                 f"declared datatype is {spec.dtype}; fix the declaration or "
                                 "cast inside the module")
            out[spec.name] = array
        return out

    # -- recipe ----------------------------------------------------------------------
    def spec(self) -> BrickSpec:
        path, pickled = (self._path, self._pickled) if self._path else self._save()
        config: dict[str, Any] = {
            "torch": str(path), "device": self.device,
            "inputs": [s.to_dict() for s in self.signature.inputs],
            "outputs": [s.to_dict() for s in self.signature.outputs],
        }
        if pickled:
            config["pickled"] = True
        return BrickSpec(self.kind, self.name, config)

    def _save(self) -> tuple[Path, bool]:
        """Write the in-memory module to a file this brick owns: a ``torch.export`` program
        (batch axis dynamic) when the module exports, else ``torch.save`` of the user's own
        object (reloaded only from that file)."""
        torch = lazy_import("torch", "torch")
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix=f"bw-torch-{self.name}-")
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
        module = self._module
        if isinstance(module, torch.nn.Module):
            path = Path(self._tmp) / f"{self.name}.pt2"
            try:
                torch.export.save(self._export(torch, module), str(path))
                return path, False
            except Exception as exc:
                log.info("brick %r does not export (%s); saving it with torch.save",
                         self.name, exc)
        path = Path(self._tmp) / f"{self.name}.pt"
        torch.save(module, path)
        return path, True

    def _export(self, torch: Any, module: Any) -> Any:
        batch = torch.export.Dim("batch", min=1)
        args, shapes = [], []
        for spec in self.signature.inputs:
            dims = tuple(2 if d == -1 else d for d in spec.shape)
            args.append(torch.zeros(dims, dtype=getattr(torch, to_numpy_dtype(spec.dtype).name)))
            shapes.append({0: batch} if spec.shape[0] == -1 else None)
        was_training = module.training
        module.eval()
        try:
            return torch.export.export(module, tuple(args), dynamic_shapes=tuple(shapes))
        finally:
            module.train(was_training)

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> TorchBrick:
        opts = config_options(config, "torch", (*cls.config_keys, "device"))
        brick = cls(resolve_path(config.get("torch"), base_dir, "torch"), name=name,
                    inputs=opts.get("inputs"), outputs=opts.get("outputs"),
                    device=opts.get("device", "cpu"))
        brick._pickled = bool(opts.get("pickled", False))
        return brick
