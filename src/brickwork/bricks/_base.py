"""The Brick protocol, the base class every built-in brick extends, and the kind registry."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import logging
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, SpecError
from ..spec import Signature, Tensors, TensorSpec, to_numpy_dtype

log = logging.getLogger("brickwork.bricks")

__all__ = ["BaseBrick", "Brick", "BrickSpec", "ConfigKey", "brick_from_spec", "config_keys", "import_object",
           "kind_class", "kind_module", "known_kinds", "local_origin", "local_package", "register_kind",
           "sample_inputs"]


@runtime_checkable
class Brick(Protocol):
    """What the engine needs of a model. Calls are batched along axis 0 of every tensor."""

    name: str

    @property
    def signature(self) -> Signature: ...

    def load(self) -> None: ...

    def warmup(self) -> None: ...

    def __call__(self, inputs: Tensors) -> Tensors: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BrickSpec:
    """How to rebuild a brick somewhere else (a worker process, a Ray actor) without pickling
    a live model: a registered kind and its JSON-able config. ``config`` is exactly the brick's
    YAML entry without stage options, so it includes the kind key: ``{"onnx": "model.onnx",
    "providers": ["CPUExecutionProvider"]}`` or ``{"python": "pkg.mod:fn", "batch": true}``.
    Relative paths in ``config`` resolve against ``base_dir``."""

    kind: str
    name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    base_dir: str = "."


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key of a brick kind's YAML entry (and keyword of its ``bw.<kind>`` factory): the
    one table from which ``from_config`` checks entries, the factories are tested, and the YAML
    reference and JSON Schema are generated. ``schema`` is the value's JSON Schema."""

    name: str
    schema: Mapping[str, Any]
    doc: str
    required: bool = False


# JSON Schema fragments shared by the brick tables.
PATH: Mapping[str, Any] = {"type": "string"}
TENSORS: Mapping[str, Any] = {
    "description": "a tensor name, a list of names or of {name, datatype, shape}, or a "
                   "mapping name -> datatype or [datatype, shape]",
    "anyOf": [
        {"type": "string"},
        {"type": "object", "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array"}]}},
        {"type": "array", "items": {"anyOf": [
            {"type": "string"},
            {"type": "object", "required": ["name"], "additionalProperties": False,
             "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                            "dtype": {"type": "string"},
                            "shape": {"type": "array", "items": {"type": "integer"}}}},
        ]}},
    ],
}


def config_keys(cls: Any) -> tuple[ConfigKey, ...]:
    """The YAML keys of a brick class (its kind key first); empty for a class without a table."""
    return tuple(getattr(cls, "config_keys", ()))


_KINDS: dict[str, str] = {
    # kind -> "module:Class" (imported only when used, so frameworks stay optional)
    "python": "brickwork.bricks.function:FunctionBrick",
    "onnx": "brickwork.bricks.onnx:OnnxBrick",
    "sklearn": "brickwork.bricks.sklearn:SklearnBrick",
    "torch": "brickwork.bricks.torch:TorchBrick",
    "transformers": "brickwork.bricks.transformers:TransformersBrick",
    "http": "brickwork.bricks.http:HttpBrick",
    "v2": "brickwork.bricks.http:RemoteV2Brick",
    "cast": "brickwork.bricks.cast:CastBrick",
    "fake": "brickwork.testing:FakeBrick",
    "fuse": "brickwork.fusion:FuseBrick",
    "track": "brickwork.fusion:TrackBrick",
    "llm": "brickwork.llm:LlmBrick",
    "openai": "brickwork.llm:OpenAIBrick",
}


def register_kind(kind: str, target: str) -> None:
    """Make ``kind`` buildable from a spec/YAML; ``target`` is ``"module:Class"`` whose class
    has ``from_config(config, base_dir, name)``."""
    _KINDS[kind] = target


def kind_module(kind: str) -> str | None:
    """The ``"module:Class"`` registered for ``kind`` (a worker process re-registers it)."""
    return _KINDS.get(kind)


def known_kinds() -> frozenset[str]:
    return frozenset(_KINDS)


def kind_class(kind: str) -> Any:
    try:
        target = _KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown brick kind {kind!r}; known kinds are {sorted(_KINDS)}"
        ) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def brick_from_spec(spec: BrickSpec) -> Brick:
    return kind_class(spec.kind).from_config(dict(spec.config), Path(spec.base_dir), spec.name)


class BaseBrick:
    """Shared behaviour: idempotent load, a generated warm-up batch, no-op close.

    Subclasses set ``kind``, build ``signature`` (possibly in ``load``), and implement
    ``_call``. ``rowwise`` says output axis 0 matches input axis 0, which lets the engine
    concatenate several requests into one batch and split the result back; a brick that
    changes the number of items (one page in, many text lines out) sets it False.
    ``blocking`` says the brick does real work and should run off the event loop.
    """

    kind: ClassVar[str] = "custom"
    rowwise: bool = True
    blocking: bool = True
    warmup_error: str | None = None

    def __init__(self, name: str, signature: Signature | None = None) -> None:
        self.name = name
        self._signature = signature
        self._loaded = False
        self.device = "cpu"

    @property
    def signature(self) -> Signature:
        if self._signature is None:
            self.load()
        if self._signature is None:
            raise SpecError(f"brick {self.name!r} has no signature after load()")
        return self._signature

    def load(self) -> None:
        if not self._loaded:
            self._load()
            self._loaded = True

    def _load(self) -> None:
        """Load weights/sessions; called once per worker."""

    def __call__(self, inputs: Tensors) -> Tensors:
        if not self._loaded:
            self.load()
        return self._call(inputs)

    def _call(self, inputs: Tensors) -> Tensors:
        raise NotImplementedError

    def warmup(self) -> None:
        """Call the brick once on a generated sample (zeros, empty strings): as many rows as a
        fixed batch axis asks for (else one), every other dynamic dimension 64 long, or 1 if
        that fails (a CNN that downsamples 32x cannot take a 1x1 image). Best effort: a brick
        that rejects both still serves, so the failure is logged, not raised (a primary with a
        fallback must be able to start). Load failures stay fatal."""
        sig = self.signature
        batch = next((s.shape[0] for s in sig.inputs if s.shape and s.shape[0] != -1), 1)
        for dynamic in (64, 1):
            try:
                self(sample_inputs(sig, batch, dynamic))
            except Exception as exc:  # any failure of the sample call is reported
                self.warmup_error = f"{type(exc).__name__}: {exc}"
            else:
                self.warmup_error = None
                return
        log.warning("warm-up of brick %r failed (it will still serve; the first requests pay the "
                    "start-up cost): %s", self.name, self.warmup_error)

    def close(self) -> None:
        self._loaded = False

    def spec(self) -> BrickSpec:
        """The recipe to rebuild this brick in another process."""
        raise ConfigError(
            f"brick {self.name!r} ({type(self).__name__}) cannot be rebuilt in another process; "
            "give it a kind and config (or use worker='thread')"
        )

    def __repr__(self) -> str:
        sig = self._signature if self._signature is not None else "(not loaded)"
        return f"<{type(self).__name__} {self.name!r} {sig}>"


def sample_inputs(signature: Signature, batch_size: int = 1, dynamic: int = 1) -> Tensors:
    """A batch of zeros (or empty strings) matching a signature, for warm-up and benchmarks:
    ``batch_size`` rows, ``dynamic`` along every other dynamic dimension."""
    return {spec.name: sample_tensor(spec, batch_size, dynamic) for spec in signature.inputs}


def sample_tensor(spec: TensorSpec, batch_size: int = 1, dynamic: int = 1) -> np.ndarray:
    """Zeros (or empty strings) of ``spec``'s shape: ``batch_size`` rows, ``dynamic`` along
    every other dynamic dimension."""
    shape = tuple(batch_size if i == 0 else (dynamic if d == -1 else d) for i, d in enumerate(spec.shape))
    if spec.dtype == "BYTES":
        out = np.empty(shape, dtype=object)
        out.fill("")
        return out
    return np.zeros(shape, dtype=to_numpy_dtype(spec.dtype))


def import_object(target: str, *, base_dir: str | Path | None = None) -> Any:
    """Import ``"package.module:attr.sub"``.

    With ``base_dir`` (the folder of the pipeline file that names the target), a module whose
    file sits in that folder (``base_dir/module.py`` or the package ``base_dir/module/``) is
    loaded from there, inside a private package of that folder: two folders that each have a
    ``steps.py`` get two modules, never one folder's module for both. A name with no file in
    ``base_dir`` is imported as usual (installed packages, ``sys.path``). A module that fails to
    import (syntax error, an exception at import, a missing dependency) is a ``ConfigError``
    naming the module's own file and line."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"expected 'module:attribute', got {target!r}")
    qualified = module
    if base_dir is not None and _is_local(Path(base_dir), module):
        qualified = f"{local_package(Path(base_dir))}.{module}"
    obj: Any = _import_module(qualified, module, target)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = getattr(obj, "__file__", None) if part == attr.split(".")[0] else None
            shown = f" (file {where})" if where else ""
            raise ConfigError(f"module {module!r} has no attribute {attr!r}{shown}") from None
    return obj


_LOCAL_PREFIX = "_brickwork_dir_"


def local_package(base_dir: Path) -> str:
    """The name of the private package that holds the modules of ``base_dir`` (one per folder,
    the same name in every process, so a worker process re-imports a brick the same way)."""
    path = str(base_dir.resolve())
    name = _LOCAL_PREFIX + hashlib.sha1(path.encode()).hexdigest()[:12]
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [path]
        sys.modules.setdefault(name, importlib.util.module_from_spec(spec))
    return name


def local_origin(module: str) -> tuple[str, str] | None:
    """``("steps", "/abs/folder")`` for a module loaded by :func:`import_object` from a
    pipeline's folder (``"_brickwork_dir_<hash>.steps"``), else None."""
    top, _, rest = module.partition(".")
    if not top.startswith(_LOCAL_PREFIX) or not rest:
        return None
    pkg = sys.modules.get(top)
    paths = list(getattr(pkg, "__path__", None) or [])
    return (rest, paths[0]) if paths else None


def _is_local(base_dir: Path, module: str) -> bool:
    top = base_dir / module.split(".")[0]
    return top.with_suffix(".py").is_file() or (top / "__init__.py").is_file()


def _import_module(qualified: str, module: str, target: str) -> Any:
    try:
        return importlib.import_module(qualified)
    except SyntaxError as exc:
        raise ConfigError(f"module {module!r} for {target!r} has a syntax error at "
                          f"{exc.filename}:{exc.lineno}: {exc.msg}") from exc
    except ImportError as exc:
        where = _raised_at(exc)
        shown = f" (at {where})" if where else ""
        raise ConfigError(f"cannot import module {module!r} for {target!r}{shown}: {exc}") from exc
    except Exception as exc:  # the module's own code raised while it was imported
        where = _raised_at(exc)
        shown = f" at {where}" if where else ""
        raise ConfigError(f"module {module!r} for {target!r} raised {type(exc).__name__} while "
                          f"being imported{shown}: {exc}") from exc


def _raised_at(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of ``exc`` outside the import machinery."""
    where = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename != __file__ and "importlib" not in filename and not filename.startswith("<frozen"):
            where = f"{filename}:{lineno}"
    return where


def lazy_import(module: str, extra: str) -> Any:
    """Import an optional framework, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{module} is not installed; install it with: pip install 'brickwork[{extra}]'"
        ) from exc


Factory = Callable[..., Brick]
