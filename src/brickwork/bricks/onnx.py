"""ONNX models run by ONNX Runtime.

The signature is read from the model: ONNX Runtime's type strings (``tensor(float)``) become
v2 dtypes, symbolic or unknown dims become ``-1``. Execution providers are an explicit list, or
chosen from ``device``: CUDA/TensorRT for ``cuda[:N]`` when this onnxruntime build has them,
CPU otherwise; the choice is logged and exposed as ``brick.providers``. onnxruntime is imported
only when the session is created.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInput, ModelError, RequestError
from ..options import STAGE_KEYS
from ..spec import Signature, Tensors, TensorSpec, dtype_of
from ._base import PATH, BaseBrick, BrickSpec, ConfigKey, lazy_import

__all__ = ["OPTIMIZATION_LEVELS", "OnnxBrick", "choose_providers", "config_options", "resolve_path"]

log = logging.getLogger("brickwork.bricks.onnx")

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")

ProviderLike = str | tuple[str, Mapping[str, Any]]


def config_options(config: Mapping[str, Any], kind: str, own: Sequence[ConfigKey | str]) -> dict[str, Any]:
    """The brick's own keys of a pipeline-file entry (its ``config_keys`` table, the kind key
    excluded); stage options are left to the graph. An unknown key is refused with the list of
    known ones (typos fail loudly)."""
    names = [k if isinstance(k, str) else k.name for k in own]
    names = [n for n in names if n != kind]
    unknown = sorted(set(config) - set(names) - STAGE_KEYS - {kind, "fallback", "rename"})
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} for a {kind!r} brick; its keys are {sorted(names)} "
            f"plus the stage options {sorted(STAGE_KEYS | {'fallback', 'rename'})}"
        )
    return {k: config[k] for k in names if k in config}


def resolve_path(value: Any, base_dir: Path, kind: str) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise ConfigError(f"a {kind!r} brick needs a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def choose_providers(
    providers: Sequence[ProviderLike] | None, device: str, available: Sequence[str]
) -> list[ProviderLike]:
    """The execution providers for a session, best first.

    An explicit list is used as given (every entry must be available here). Otherwise
    ``device="cuda[:N]"`` picks TensorRT and CUDA when available (on GPU N), then CPU; any
    other device picks CPU.
    """
    if providers:
        chosen: list[ProviderLike] = [
            p if isinstance(p, str) else (p[0], dict(p[1])) for p in providers
        ]
        missing = [n for n in (p if isinstance(p, str) else p[0] for p in chosen)
                   if n not in available]
        if missing:
            raise ConfigError(
                f"execution provider(s) {missing} are not available in this onnxruntime build; "
                f"available: {list(available)} (install onnxruntime-gpu for CUDA/TensorRT)"
            )
        return chosen
    if device.startswith("cuda"):
        gpu_id = int(device.partition(":")[2] or 0)
        gpu = [(name, {"device_id": gpu_id})
               for name in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
               if name in available]
        if gpu:
            return [*gpu, "CPUExecutionProvider"]
        log.warning("device %r asked for, but onnxruntime has no CUDA/TensorRT provider "
                    "(available: %s); running on CPU", device, list(available))
    return ["CPUExecutionProvider"]


def _dims(shape: Any) -> tuple[int, ...]:
    if not shape:  # no declared shape (ORT shows it as []): only a batch axis is promised
        return (-1,)
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


def _port_spec(arg: Any) -> TensorSpec:
    if not str(arg.type).startswith("tensor("):
        raise ConfigError(
            f"port {arg.name!r} has ONNX type {arg.type}; only tensors are supported "
            "(export classifiers with zipmap off)"
        )
    return TensorSpec(arg.name, dtype_of(arg.type), _dims(arg.shape))


def _as_text(array: np.ndarray) -> np.ndarray:
    """ONNX Runtime takes string tensors as arrays of ``str``; decode any ``bytes`` items."""
    if array.dtype.kind == "U":
        return array.astype(object)
    flat = array.ravel()
    if not any(isinstance(x, bytes) for x in flat):
        return array
    out = np.empty(flat.shape, dtype=object)
    for i, x in enumerate(flat):
        out[i] = x.decode("utf-8") if isinstance(x, bytes) else x
    return out.reshape(array.shape)


class OnnxBrick(BaseBrick):
    """An ONNX model file as a brick.

    path: the ``.onnx`` file.
    providers: execution providers, best first (names or ``(name, options)`` pairs);
        None = chosen from ``device``.
    intra_op_threads / inter_op_threads: ONNX Runtime thread pools; None = its default.
    optimization: graph optimisation level, one of ``OPTIMIZATION_LEVELS``. Default "all".
    device: "cpu" or "cuda[:N]"; picks providers when ``providers`` is None.
    """

    kind = "onnx"
    config_keys = (
        ConfigKey("onnx", PATH, "the ``.onnx`` file (relative to the pipeline file)", required=True),
        ConfigKey("providers", {"type": "array", "items": {"anyOf": [
            {"type": "string"}, {"type": "array", "prefixItems": [{"type": "string"}, {"type": "object"}]}]}},
            "ONNX Runtime execution providers, best first: names or [name, {options}]; "
            "default: chosen from ``device``"),
        ConfigKey("intra_op_threads", {"type": "integer", "minimum": 1},
                  "threads inside one operator; default: ONNX Runtime's"),
        ConfigKey("inter_op_threads", {"type": "integer", "minimum": 1},
                  "threads across operators; default: ONNX Runtime's"),
        ConfigKey("optimization", {"enum": list(OPTIMIZATION_LEVELS)},
                  "graph optimisation level; default \"all\""),
    )

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        providers: Sequence[ProviderLike] | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        optimization: str = "all",
        device: str = "cpu",
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise ConfigError(f"ONNX model file {str(path)!r} does not exist (resolved to {self.path})")
        for label, value in (("intra_op_threads", intra_op_threads),
                             ("inter_op_threads", inter_op_threads)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{label} must be an int >= 1 or None, got {value!r}")
        if optimization not in OPTIMIZATION_LEVELS:
            raise ConfigError(f"optimization must be one of {list(OPTIMIZATION_LEVELS)}, "
                              f"got {optimization!r}")
        super().__init__(name or self.path.stem)
        self.device = device
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.optimization = optimization
        self._requested = list(providers) if providers else None
        self._session: Any = None
        self._output_names: list[str] = []
        self._free_rank: set[str] = set()
        self.providers: list[str] = []  # what the session really uses, set by load()

    # -- loading ---------------------------------------------------------------------
    def _load(self) -> None:
        ort = lazy_import("onnxruntime", "onnx")
        opts = ort.SessionOptions()
        opts.log_severity_level = 4  # every failure reaches the caller as an exception instead
        if self.intra_op_threads is not None:
            opts.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads is not None:
            opts.inter_op_num_threads = self.inter_op_threads
        # ORT's worker threads spin while idle by default. Behind a batching engine the event
        # loop and the other stages share these cores, so spinning only steals their CPU
        # (measured: 0.44 -> 0.10 ms server CPU per request on a small MLP, bench/peers).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        chosen = choose_providers(self._requested, self.device, ort.get_available_providers())
        try:
            session = ort.InferenceSession(str(self.path), sess_options=opts, providers=chosen)
        except Exception as exc:
            raise ConfigError(f"ONNX Runtime cannot load {str(self.path)!r} for brick "
                              f"{self.name!r}: {exc}") from exc
        self.providers = list(session.get_providers())
        log.info("brick %r: ONNX Runtime providers %s", self.name, self.providers)
        signature = Signature([_port_spec(a) for a in session.get_inputs()],
                              [_port_spec(a) for a in session.get_outputs()])
        if self._signature is not None and signature != self._signature:
            raise ConfigError(f"{str(self.path)!r} changed on disk: brick {self.name!r} had "
                              f"signature {self._signature}, the file now has {signature}")
        self._signature = signature
        self._output_names = list(signature.output_names)
        self._free_rank = {a.name for a in session.get_inputs() if not a.shape}
        self._session = session

    def close(self) -> None:
        self._session = None
        super().close()

    # -- calling ---------------------------------------------------------------------
    def _call(self, inputs: Tensors) -> Tensors:
        return self.run(inputs, self._output_names)

    def run(self, inputs: Tensors, output_names: Sequence[str]) -> Tensors:
        """Run the session for the named outputs only."""
        if self._session is None:
            self.load()
        feed = self._feed(inputs)
        try:
            values = self._session.run(list(output_names), feed)
        except Exception as exc:
            raise self._translate(exc) from exc
        return dict(zip(output_names, values, strict=True))

    def call_unchecked(self, inputs: Tensors) -> Tensors:
        """``self(inputs)`` without the input checks, for inputs whose names, dtypes and shapes
        already passed them once: a process worker remembers the batch layouts its brick
        accepted (``engine/_worker.py``) and calls this for the next batches of the same layout
        (the checks cost ~35 µs a batch in the worker, bench/README.md). Called directly, a
        brick always checks."""
        session = self._session
        if session is None:
            return self(inputs)
        names = self._output_names
        try:
            values = session.run(names, inputs)
        except Exception as exc:
            raise self._translate(exc) from exc
        return dict(zip(names, values, strict=True))

    def bind_arrays(self, inputs: Tensors, outputs: Mapping[str, np.ndarray]) -> Callable[[], None] | None:
        """A call that runs the session on the arrays ``inputs`` (as they are at each call) and
        writes every output into its array of ``outputs`` in place (ONNX Runtime's I/O binding:
        no input conversion, no output allocation or copy). For inputs that passed the checks
        (see ``call_unchecked``) and outputs of the shapes and dtypes the model answered them
        with; a run whose output would have another shape raises, and the caller runs the batch
        the plain way. The arrays must stay valid while the call is kept. None before load."""
        session = self._session
        if session is None or set(outputs) != set(self._output_names):
            return None
        ort = lazy_import("onnxruntime", "onnx")
        binding = session.io_binding()
        for name, array in inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for name, array in outputs.items():
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(array))
        run = session.run_with_iobinding

        def call() -> None:
            try:
                run(binding)
            except Exception as exc:
                raise self._translate(exc) from exc

        return call

    def _feed(self, inputs: Tensors) -> dict[str, np.ndarray]:
        sig = self.signature
        unknown = sorted(set(inputs) - set(sig.input_names))
        missing = [n for n in sig.input_names if n not in inputs]
        if unknown or missing:
            raise InvalidInput(f"brick {self.name!r} takes inputs {list(sig.input_names)}; "
                               f"missing {missing}, unknown {unknown}")
        feed = {}
        for spec in sig.inputs:
            array = inputs[spec.name]
            if spec.dtype == "BYTES" and isinstance(array, np.ndarray):
                array = _as_text(array)
            where = f"brick {self.name!r} input"
            if spec.name in self._free_rank:  # the model declares no shape: check dtype only
                spec = TensorSpec(spec.name, spec.dtype, (-1,) * max(np.ndim(array), 1))
            feed[spec.name] = spec.check(np.asarray(array), where=where)
        return feed

    def _translate(self, exc: Exception) -> RequestError:
        message = str(exc)
        if type(exc).__name__ == "InvalidArgument":
            ports = [n for n in self.signature.input_names
                     if re.search(rf"\b{re.escape(n)}\b", message)]
            where = f"input {ports[0]!r}" if ports else f"inputs {list(self.signature.input_names)}"
            return InvalidInput(f"brick {self.name!r} {where} rejected by ONNX Runtime: {message}")
        return ModelError(f"brick {self.name!r} (ONNX Runtime) failed: {type(exc).__name__}: "
                          f"{message}")

    # -- recipe ----------------------------------------------------------------------
    def spec(self) -> BrickSpec:
        config: dict[str, Any] = {"onnx": str(self.path), "device": self.device,
                                  "optimization": self.optimization}
        if self._requested:
            config["providers"] = [p if isinstance(p, str) else [p[0], dict(p[1])]
                                   for p in self._requested]
        for key in ("intra_op_threads", "inter_op_threads"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return BrickSpec(self.kind, self.name, config)

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> OnnxBrick:
        opts = config_options(config, "onnx", (*cls.config_keys, "device"))
        providers = opts.pop("providers", None)
        if providers is not None:
            providers = [p if isinstance(p, str) else (p[0], p[1]) for p in providers]
        return cls(resolve_path(config.get("onnx"), base_dir, "onnx"), name=name,
                   providers=providers, **opts)
