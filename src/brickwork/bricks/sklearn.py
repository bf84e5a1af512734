"""scikit-learn estimators as bricks, run natively or converted to ONNX.

Ports:

* input ``features``: ``[-1, n_features]``, FP64 natively (so FP32/INT producers are cast
  losslessly), FP32 when converted to ONNX. ``n_features`` comes from ``n_features_in_``.
* ``method="predict"``: a classifier publishes ``label`` ``[-1]`` (INT64 for integer classes,
  BYTES for string classes); a regressor publishes ``prediction`` ``[-1]`` (or
  ``[-1, n_targets]``).
* ``method="predict_proba"``: ``probabilities`` ``[-1, n_classes]`` (FP64 natively, FP32 in
  ONNX) and ``label`` (the class with the highest probability).
* ``method="transform"``: ``transformed`` ``[-1, n_outputs]``.

``to_onnx=True`` converts the estimator with skl2onnx (zipmap off) and runs it in an
:class:`~brickwork.bricks.onnx.OnnxBrick`; the conversion is refused unless the ONNX model's
outputs match sklearn's on sample rows within ``parity_atol``. A model given as a path is
loaded with joblib: load only files you made or trust (a pickle can run code).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInput, ModelError, RequestError
from ..spec import Signature, Tensors, TensorSpec
from ._base import PATH, BaseBrick, BrickSpec, ConfigKey, lazy_import
from .onnx import OnnxBrick, config_options, resolve_path

__all__ = ["METHODS", "SklearnBrick"]

log = logging.getLogger("brickwork.bricks.sklearn")

METHODS = ("predict", "predict_proba", "transform")
PARITY_ROWS = 64


def _label_dtype(classes: np.ndarray) -> str:
    kind = np.asarray(classes).dtype.kind
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    if kind == "f":
        return "FP64"
    return "BYTES"


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


class SklearnBrick(BaseBrick):
    """A fitted scikit-learn estimator (or a joblib file of one) as a brick.

    method: "predict", "predict_proba" or "transform". Default "predict".
    to_onnx: convert with skl2onnx and run on ONNX Runtime (checked for output parity).
    n_features: the feature count when the estimator has no ``n_features_in_``.
    sample: rows (``[n, n_features]``) for the parity check; None = 64 seeded random rows.
    parity_atol: largest allowed difference between sklearn's and ONNX's outputs. Default 1e-4.
    """

    kind = "sklearn"
    config_keys = (
        ConfigKey("sklearn", PATH, "a joblib/pickle file of a fitted estimator (load only files "
                  "you made or trust: a pickle can run code)", required=True),
        ConfigKey("method", {"enum": list(METHODS)}, "what to call; default \"predict\""),
        ConfigKey("to_onnx", {"type": "boolean"},
                  "convert with skl2onnx and run on ONNX Runtime (parity-checked); default false"),
        ConfigKey("n_features", {"type": "integer", "minimum": 1},
                  "the feature count when the estimator has no ``n_features_in_``"),
        ConfigKey("parity_atol", {"type": "number", "minimum": 0},
                  "largest allowed sklearn/ONNX output difference; default 1e-4"),
        ConfigKey("onnx_options", {"type": "object", "additionalProperties": False, "properties": {
            k.name: k.schema for k in OnnxBrick.config_keys[1:]}},
            "with ``to_onnx``: options of the ONNX Runtime session the converted model runs in "
            "(providers, intra_op_threads, inter_op_threads, optimization)"),
        ConfigKey("converted", PATH, "the converted ONNX file (written by ``dump_graph``)"),
    )

    def __init__(
        self,
        model_or_path: Any,
        *,
        name: str | None = None,
        method: str = "predict",
        to_onnx: bool = False,
        n_features: int | None = None,
        sample: Any = None,
        parity_atol: float = 1e-4,
        onnx_options: dict[str, Any] | None = None,
        _converted: str | Path | None = None,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"sklearn method must be one of {list(METHODS)}, got {method!r}")
        self.method = method
        self.to_onnx = bool(to_onnx)
        self.parity_atol = float(parity_atol)
        self.onnx_options = dict(onnx_options or {})
        self._path: Path | None = None
        self._tmp: str | None = None
        self._onnx: OnnxBrick | None = None
        self._onnx_outputs: dict[str, str] = {}  # our port -> the ONNX model's output
        self.model: Any = None
        if isinstance(model_or_path, str | Path):
            self._path = Path(model_or_path).expanduser().resolve()
        if _converted is not None:  # rebuilt from spec(): the ONNX file is all we need
            super().__init__(name or "sklearn")
            self._use_onnx(Path(_converted), dict(onnx_options or {}))
            return
        self.model = self._read(self._path) if self._path is not None else model_or_path
        if not hasattr(self.model, method):
            raise ConfigError(f"{type(self.model).__name__} has no method {method!r}; "
                              f"pick one of {[m for m in METHODS if hasattr(self.model, m)]}")
        n = n_features if n_features is not None else getattr(self.model, "n_features_in_", None)
        if not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(f"cannot tell how many features {type(self.model).__name__} takes "
                              "(it has no n_features_in_); pass n_features=")
        self.n_features = int(n)
        super().__init__(name or (self._path.stem if self._path else type(self.model).__name__.lower()))
        self.classes = getattr(self.model, "classes_", None)
        if self.to_onnx:
            path = self._convert(dict(onnx_options or {}))
            self._use_onnx(path, dict(onnx_options or {}))
            self._check_parity(sample)
        else:
            self._signature = self._native_signature()

    # -- building --------------------------------------------------------------------
    @staticmethod
    def _read(path: Path) -> Any:
        if not path.is_file():
            raise ConfigError(f"sklearn model file {str(path)!r} does not exist")
        joblib = lazy_import("joblib", "sklearn")
        try:
            return joblib.load(path)
        except Exception as exc:
            raise ConfigError(f"cannot load sklearn model {str(path)!r}: {exc}") from exc

    def _native_signature(self) -> Signature:
        features = TensorSpec("features", "FP64", (-1, self.n_features))
        if self.method == "transform":
            try:
                width = len(self.model.get_feature_names_out())
            except Exception:
                width = -1
            return Signature([features], [TensorSpec("transformed", "FP64", (-1, width))])
        if self.classes is None:
            if self.method == "predict_proba":
                raise ConfigError(f"{type(self.model).__name__} has predict_proba but no classes_")
            n_out = getattr(self.model, "n_outputs_", 1)
            shape = (-1,) if n_out == 1 else (-1, n_out)
            return Signature([features], [TensorSpec("prediction", "FP64", shape)])
        label = TensorSpec("label", _label_dtype(self.classes), (-1,))
        if self.method == "predict":
            return Signature([features], [label])
        probs = TensorSpec("probabilities", "FP64", (-1, len(self.classes)))
        return Signature([features], [probs, label])

    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix=f"bw-sklearn-{self.name}-")
            weakref.finalize(self, shutil.rmtree, self._tmp, True)
        return Path(self._tmp)

    def _convert(self, onnx_options: dict[str, Any]) -> Path:
        skl2onnx = lazy_import("skl2onnx", "sklearn")
        types = lazy_import("skl2onnx.common.data_types", "sklearn")
        options = None
        if self.classes is not None:
            options = {id(_final_estimator(self.model)): {"zipmap": False}}
        try:
            proto = skl2onnx.convert_sklearn(
                self.model, name=self.name,
                initial_types=[("features", types.FloatTensorType([None, self.n_features]))],
                options=options,
            )
        except Exception as exc:
            raise ConfigError(f"skl2onnx cannot convert {type(self.model).__name__} for brick "
                              f"{self.name!r}: {exc}; use to_onnx=False") from exc
        path = self._workdir() / f"{self.name}.onnx"
        path.write_bytes(proto.SerializeToString())
        return path

    def _use_onnx(self, path: Path, onnx_options: dict[str, Any]) -> None:
        inner = OnnxBrick(path, name=self.name, **onnx_options)
        inner.load()
        sig = inner.signature
        names = list(sig.output_names)
        if "label" in names and "probabilities" in names:
            wanted = {"predict": ["label"], "predict_proba": ["probabilities", "label"]}
            ports = wanted.get(self.method)
            if ports is None:
                raise ConfigError(f"a converted classifier offers predict/predict_proba, "
                                  f"not {self.method!r}")
            mapping = {p: p for p in ports}
        else:
            port = "transformed" if self.method == "transform" else "prediction"
            mapping = {port: names[0]}
        outputs = []
        for port, onnx_name in mapping.items():
            spec = sig.output(onnx_name)
            shape = spec.shape
            if port == "prediction" and shape[1:] == (1,):
                shape = (-1,)  # skl2onnx gives single-target regressors a [N, 1] output
            outputs.append(TensorSpec(port, spec.dtype, shape))
        feature_port = sig.inputs[0]
        self.n_features = feature_port.shape[1] if feature_port.rank == 2 else -1
        self._signature = Signature([feature_port.renamed("features")], outputs)
        self._onnx_input = feature_port.name
        self._onnx_outputs = mapping
        self._onnx = inner

    def _check_parity(self, sample: Any) -> None:
        if sample is None:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((PARITY_ROWS, self.n_features)).astype(np.float32)
        else:
            x = np.asarray(sample, dtype=np.float32)
        got = self._run_onnx(x)
        ref = self._run_native(x.astype(np.float64))
        problems = []
        for port, want in ref.items():
            have = got[port]
            if want.dtype.kind in "fc":
                diff = np.abs(have.astype(np.float64) - want.reshape(have.shape))
                limit = self.parity_atol + 1e-4 * np.abs(want.reshape(have.shape))
                if not np.all(diff <= limit):  # NaN counts as drift
                    problems.append(f"max |Δ{port}| = {float(np.nanmax(diff)):.3g} > "
                                    f"{self.parity_atol:g}")
            else:
                wrong = have.astype(object) != want.astype(object)
                if "probabilities" in ref:  # forgive near-ties that float32 may flip
                    top2 = np.sort(ref["probabilities"], axis=1)[:, -2:]
                    wrong &= (top2[:, 1] - top2[:, 0]) > 2 * self.parity_atol
                if np.any(wrong):
                    problems.append(f"{int(wrong.sum())} of {len(want)} {port}s differ")
        if problems:
            raise ConfigError(
                f"brick {self.name!r}: the ONNX conversion of {type(self.model).__name__} drifts "
                f"from sklearn on {len(x)} sample rows ({'; '.join(problems)}); keep "
                "to_onnx=False, or raise parity_atol if that drift is acceptable"
            )
        log.info("brick %r: ONNX conversion matches sklearn on %d rows", self.name, len(x))

    # -- calling ---------------------------------------------------------------------
    def _load(self) -> None:
        if self._onnx is not None:
            self._onnx.load()

    def close(self) -> None:
        if self._onnx is not None:
            self._onnx.close()
        super().close()

    def _call(self, inputs: Tensors) -> Tensors:
        try:
            x = inputs["features"]
        except KeyError:
            raise InvalidInput(f"brick {self.name!r} takes one input 'features', "
                               f"got {sorted(inputs)}") from None
        self.signature.input("features").check(x, where=f"brick {self.name!r} input")
        if self._onnx is not None:
            return self._run_onnx(x)
        return self._run_native(x)

    def _run_onnx(self, x: np.ndarray) -> Tensors:
        assert self._onnx is not None
        out = self._onnx.run({self._onnx_input: x}, list(self._onnx_outputs.values()))
        result: Tensors = {}
        for port, onnx_name in self._onnx_outputs.items():
            value = out[onnx_name]
            if port == "prediction" and value.ndim == 2 and value.shape[1] == 1:
                value = value[:, 0]
            result[port] = value
        return result

    def _run_native(self, x: np.ndarray) -> Tensors:
        try:
            value = getattr(self.model, self.method)(x)
        except RequestError:
            raise
        except ValueError as exc:
            raise InvalidInput(f"brick {self.name!r} input 'features' rejected by "
                               f"{type(self.model).__name__}.{self.method}: {exc}") from exc
        except Exception as exc:
            raise ModelError(f"brick {self.name!r} ({type(self.model).__name__}.{self.method}) "
                             f"raised {type(exc).__name__}: {exc}") from exc
        if self.method == "predict_proba":
            probs = np.asarray(value, dtype=np.float64)
            labels = np.asarray(self.classes)[np.argmax(probs, axis=1)]
            return {"probabilities": probs, "label": self._labels(labels)}
        if self.method == "predict" and self.classes is not None:
            return {"label": self._labels(np.asarray(value))}
        port = "transformed" if self.method == "transform" else "prediction"
        return {port: np.asarray(value, dtype=np.float64)}

    def _labels(self, labels: np.ndarray) -> np.ndarray:
        dtype = self.signature.output("label").dtype
        if dtype == "BYTES":
            return labels.astype(object)
        return labels.astype({"INT64": np.int64, "BOOL": np.bool_, "FP64": np.float64}[dtype])

    # -- recipe ----------------------------------------------------------------------
    def spec(self) -> BrickSpec:
        config: dict[str, Any] = {"method": self.method, "to_onnx": self.to_onnx}
        if self._onnx is not None:
            config["converted"] = str(self._onnx.path)
            if self.onnx_options:
                config["onnx_options"] = dict(self.onnx_options)
            config["sklearn"] = str(self._path) if self._path else None
        else:
            config["sklearn"] = str(self._path or self._save())
            config["n_features"] = self.n_features
        return BrickSpec(self.kind, self.name, config)

    def _save(self) -> Path:
        path = self._workdir() / f"{self.name}.joblib"
        if not path.exists():
            lazy_import("joblib", "sklearn").dump(self.model, path)  # the user's own object
        return path

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> SklearnBrick:
        opts = config_options(config, "sklearn", cls.config_keys)
        converted = opts.pop("converted", None)
        if converted is not None:
            return cls(config.get("sklearn"), name=name, method=opts.get("method", "predict"),
                       to_onnx=True, _converted=resolve_path(converted, base_dir, "sklearn"),
                       onnx_options=opts.get("onnx_options"))
        return cls(resolve_path(config.get("sklearn"), base_dir, "sklearn"), name=name, **opts)

