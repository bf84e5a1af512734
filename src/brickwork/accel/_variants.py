"""The candidate models: each a recipe that writes one ONNX file from the FP32 one.

    fp32           the model as the brick runs it today (the baseline)
    ort-opt        ONNX Runtime's graph optimisations applied once, offline (level "extended",
                   which stays portable across CPUs), and saved
    int8-dynamic   MatMul/Gemm with constant weights to INT8 (per channel), activations
                   quantised at run time. Never on Conv: ConvInteger measured 5x slower than FP32
                   on an AVX2 CPU, so conv models get int8-static instead
    int8-mixed     int8-dynamic keeping in FP32 the sixth of MatMuls whose inputs have the
                   largest peak-to-RMS ratio on the first 64 calibration rows (outliers that per-tensor
                   INT8 coarsens most: in BERT-like models the feed-forward down-projections)
    int8-static    QDQ INT8 for conv models, ranges calibrated on --data; ``reduce_range``
                   (7-bit) where the CPU lacks VNNI, to avoid the 16-bit overflow of VPMADDUBSW
    fp16           FP16 weights and compute, FP32 inputs/outputs (``keep_io_types``)
    cuda-fp32 / cuda-fp16 / tensorrt-fp16 / tensorrt-int8
                   the GPU execution providers, only where this onnxruntime build has them
                   (tensorrt-int8: a QDQ model calibrated on --data, TensorRT builds INT8 kernels)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._data import Dataset
from ._host import Host
from ._progress import Progress

__all__ = ["CPU_VARIANTS", "GPU_VARIANTS", "Built", "Refuse", "Skip", "build_variant", "fp16_overflow", "model_facts"]

CPU_VARIANTS = ("fp32", "ort-opt", "int8-dynamic", "int8-mixed", "int8-static", "fp16")
GPU_VARIANTS = ("cuda-fp32", "cuda-fp16", "tensorrt-fp16", "tensorrt-int8")
_CALIB_BATCH = 16
_CALIB_ROWS = 256
_RANK_ROWS = 64  # the outlier ranking is stable well before this; more rows only cost time


class Skip(Exception):
    """This variant does not apply to this model or machine; the message says why."""


class Refuse(Exception):
    """This variant would be fragile (an overflow to inf/NaN); the message says where."""


@dataclass(frozen=True, slots=True)
class Built:
    """path: the variant's ONNX file. providers: the execution providers it runs on (None = CPU).
    notes: how it was made (shown in the report)."""

    path: Path
    providers: tuple[Any, ...] | None = None
    notes: str = ""
    brick_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    ops: frozenset[str]
    const_matmuls: tuple[str, ...]  # MatMul/Gemm nodes whose weight is an initializer

    @property
    def has_conv(self) -> bool:
        return bool({"Conv", "ConvTranspose"} & self.ops)


def model_facts(path: Path) -> ModelFacts:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    mm = tuple(n.name for n in model.graph.node
               if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits)
    return ModelFacts(frozenset(n.op_type for n in model.graph.node), mm)


def _preprocess(src: Path, work: Path) -> Path:
    """ONNX Runtime's recommended step before quantising (shape inference + basic fusions);
    the source file when it does not apply."""
    out = work / "pre.onnx"
    if out.exists():
        return out
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    except Exception:
        return src
    return out


def _ort_opt(src: Path, work: Path, **_: Any) -> Built:
    import onnxruntime as ort

    out = work / "ort-opt.onnx"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3
    ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])
    return Built(out, notes="graph optimisation level extended, saved offline")


def _dynamic(src: Path, work: Path, *, facts: ModelFacts, exclude: list[str], name: str) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if facts.has_conv:
        raise Skip("conv model: dynamic INT8 makes ConvInteger, measured 5x slower than FP32 on AVX2; "
                   "int8-static (QDQ) is the conv variant")
    if not facts.const_matmuls:
        raise Skip("no MatMul/Gemm with constant weights to quantise")
    out = work / f"{name}.onnx"
    pre = _preprocess(src, work)
    for source in dict.fromkeys((pre, src)):  # the pre-processed file, else the original
        try:
            quantize_dynamic(str(source), str(out), op_types_to_quantize=["MatMul", "Gemm"],
                             weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=exclude,
                             extra_options={"MatMulConstBOnly": True})
        except Exception:
            if source == src:
                raise
            continue
        break
    return out


def _int8_dynamic(src: Path, work: Path, *, facts: ModelFacts, **_: Any) -> Built:
    out = _dynamic(src, work, facts=facts, exclude=[], name="int8-dynamic")
    return Built(out, notes=f"{len(facts.const_matmuls)} MatMul/Gemm INT8 per channel")


def _with_outputs(model: Any, tensors: list[str]) -> Any:
    """A copy of ``model`` that also outputs the named intermediate tensors."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    have = {o.name for o in model.graph.output}
    for tensor in tensors:
        if tensor not in have:
            model.graph.output.append(known.get(tensor) or onnx.helper.make_empty_tensor_value_info(tensor))
            have.add(tensor)
    return model


def _activation_stats(model: Any, data: Dataset, tensors: list[str],
                      rows: int = _CALIB_ROWS) -> dict[str, tuple[float, float, int]]:
    """Per tensor over the first ``rows`` data rows: (peak |x|, sum of x², element count)."""
    import onnxruntime as ort

    session = ort.InferenceSession(_with_outputs(model, tensors).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    stats = dict.fromkeys(tensors, (0.0, 0.0, 0))
    for batch in data.batches(_CALIB_BATCH)[: max(1, rows // _CALIB_BATCH)]:
        feed = {a.name: batch[a.name] for a in session.get_inputs()}
        for tensor, value in zip(tensors, session.run(tensors, feed), strict=True):
            v = np.asarray(value, dtype=np.float64)
            v = v[np.abs(v) < SENTINEL]  # -FLT_MAX mask fills: FP16 conversion clamps them on purpose
            peak, square, count = stats[tensor]
            stats[tensor] = (max(peak, float(np.abs(v).max(initial=0.0))), square + float((v * v).sum()),
                             count + v.size)
    return stats


def outlier_ranking(src: Path, data: Dataset, names: tuple[str, ...]) -> list[tuple[float, str]]:
    """(peak/RMS of the node's input activations over the calibration rows, node), worst first."""
    import onnx

    model = onnx.load(str(src))
    inputs = {n.name: n.input[0] for n in model.graph.node if n.name in names}
    stats = _activation_stats(model, data, list(dict.fromkeys(inputs.values())), rows=_RANK_ROWS)
    ratio = {t: p / math.sqrt(s / c) if s > 0 else 0.0 for t, (p, s, c) in stats.items()}
    return sorted(((ratio[t], n) for n, t in inputs.items()), reverse=True)


FP16_MAX = 65504.0
# Values this large are "minus infinity" fills (attention masks use torch.finfo(float32).min);
# the FP16 converter clamps them to the FP16 range on purpose, so they are not an overflow.
SENTINEL = 1e30


def fp16_overflow(src: Path, data: Dataset) -> str | None:
    """Why FP16 would overflow this model, or None: a weight or an activation on the data beyond
    65504 (mask fills near -FLT_MAX aside). Checked on FP32, since ONNX Runtime's CPU kernels
    upcast FP16 and hide the inf that a GPU's FP16 kernels would produce."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            w = np.abs(numpy_helper.to_array(init))
            peak = float(w[w < SENTINEL].max(initial=0.0))
            if peak > FP16_MAX:
                return f"weight {init.name!r} holds {peak:.3g}, beyond FP16's {FP16_MAX:.0f}"
    inferred = onnx.shape_inference.infer_shapes(model)
    floats = [v.name for v in (*inferred.graph.value_info, *inferred.graph.output)
              if v.type.tensor_type.elem_type == TensorProto.FLOAT]
    if not floats:
        return None
    stats = _activation_stats(model, data, floats, rows=64)
    worst = max(stats, key=lambda t: stats[t][0])
    if stats[worst][0] > FP16_MAX:
        return f"tensor {worst!r} reaches {stats[worst][0]:.3g} on the data, beyond FP16's {FP16_MAX:.0f} (inf)"
    return None


def _int8_mixed(src: Path, work: Path, *, facts: ModelFacts, data: Dataset, **_: Any) -> Built:
    if len(facts.const_matmuls) < 6:
        raise Skip(f"only {len(facts.const_matmuls)} quantisable MatMul/Gemm: nothing to mix")
    if facts.has_conv:
        raise Skip("conv model: see int8-static")
    ranking = outlier_ranking(_preprocess(src, work), data, facts.const_matmuls)
    keep = [n for _, n in ranking[: math.ceil(len(ranking) / 6)]]
    out = _dynamic(src, work, facts=facts, exclude=keep, name="int8-mixed")
    return Built(out, notes=f"{len(ranking) - len(keep)} MatMul/Gemm INT8, {len(keep)} kept FP32 "
                            f"(input peak/RMS >= {ranking[len(keep) - 1][0]:.0f})")


class _Reader:
    """Calibration batches for quantize_static, with a progress bar."""

    def __init__(self, data: Dataset, names: list[str], progress: bool) -> None:
        batches = data.batches(_CALIB_BATCH)[: max(1, _CALIB_ROWS // _CALIB_BATCH)]
        self._items: Iterator[dict[str, np.ndarray]] = iter(
            [{n: b[n] for n in names} for b in batches])
        self.bar = Progress("calibration batches", len(batches), enabled=progress)

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._items, None)
        if item is not None:
            self.bar.advance()
        return item

    def rewind(self) -> None:  # onnxruntime >= 1.17 may ask for it; one pass is all we give
        return None


def _qdq(src: Path, work: Path, name: str, *, data: Dataset, reduce_range: bool, progress: bool) -> Path:
    """A QDQ INT8 model, activation ranges calibrated on ``data`` (with a progress bar)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    pre = _preprocess(src, work)
    names = [a.name for a in ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()]
    reader = _Reader(data, names, progress)
    CalibrationDataReader.register(_Reader)
    out = work / f"{name}.onnx"
    try:
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        reader.bar.close()
    return out


def _int8_static(src: Path, work: Path, *, facts: ModelFacts, data: Dataset, host: Host,
                 progress: bool, **_: Any) -> Built:
    if not facts.has_conv:
        raise Skip("no Conv: int8-dynamic covers MatMul/Gemm models")
    reduce = not host.vnni
    out = _qdq(src, work, "int8-static", data=data, reduce_range=reduce, progress=progress)
    return Built(out, notes=f"QDQ, per channel, calibrated on {min(len(data), _CALIB_ROWS)} rows, "
                            f"reduce_range={'on (no VNNI)' if reduce else 'off (VNNI)'}")


def _fp16_file(src: Path, work: Path, name: str, data: Dataset) -> Path:
    import onnx

    why = fp16_overflow(src, data)
    if why is not None:
        raise Refuse(f"fragile in FP16: {why}")
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise Skip("onnxconverter-common is not installed (pip install 'brickwork[accel]')") from None
    out = work / f"{name}.onnx"
    with warnings.catch_warnings():  # one line per clipped tiny constant otherwise
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True,
                                                 max_finite_val=FP16_MAX)
    onnx.save(model, str(out))
    return out


def _fp16(src: Path, work: Path, *, data: Dataset, **_: Any) -> Built:
    return Built(_fp16_file(src, work, "fp16", data), notes="FP16 weights and compute, FP32 I/O")


def _no_gpu(provider: str, host: Host) -> None:
    if provider not in host.providers:
        raise Skip(f"this onnxruntime has no {provider} (available {list(host.providers)}); "
                   "install onnxruntime-gpu on a machine with an NVIDIA GPU")


def _trt(options: dict[str, Any]) -> tuple[Any, ...]:
    return (("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider")


def _as_yaml(providers: tuple[Any, ...]) -> list[Any]:
    return [p if isinstance(p, str) else [p[0], dict(p[1])] for p in providers]


def _cuda(fp16: bool) -> Callable[..., Built]:
    def make(src: Path, work: Path, *, host: Host, data: Dataset, **_: Any) -> Built:
        _no_gpu("CUDAExecutionProvider", host)
        path = _fp16_file(src, work, "cuda-fp16", data) if fp16 else src
        return Built(path, ("CUDAExecutionProvider", "CPUExecutionProvider"), "CUDA" + (" FP16" if fp16 else ""),
                     {"device": "cuda"})

    return make


def _tensorrt_fp16(src: Path, work: Path, *, host: Host, data: Dataset, **_: Any) -> Built:
    _no_gpu("TensorrtExecutionProvider", host)
    why = fp16_overflow(src, data)
    if why is not None:
        raise Refuse(f"fragile in FP16: {why}")
    providers = _trt({"trt_fp16_enable": True})
    return Built(src, providers, "TensorRT, FP16 kernels allowed", {"providers": _as_yaml(providers)})


def _tensorrt_int8(src: Path, work: Path, *, host: Host, data: Dataset, progress: bool, **_: Any) -> Built:
    """TensorRT reads a QDQ model's scales itself: calibrate here, let it build INT8 kernels."""
    _no_gpu("TensorrtExecutionProvider", host)
    out = _qdq(src, work, "tensorrt-int8", data=data, reduce_range=False, progress=progress)
    providers = _trt({"trt_int8_enable": True, "trt_fp16_enable": True})
    return Built(out, providers, f"TensorRT INT8 from QDQ calibrated on {min(len(data), _CALIB_ROWS)} rows",
                 {"providers": _as_yaml(providers)})


RECIPES: dict[str, Callable[..., Built]] = {
    "fp32": lambda src, work, **_: Built(src, notes="the original"),
    "ort-opt": _ort_opt,
    "int8-dynamic": _int8_dynamic,
    "int8-mixed": _int8_mixed,
    "int8-static": _int8_static,
    "fp16": _fp16,
    "cuda-fp32": _cuda(False),
    "cuda-fp16": _cuda(True),
    "tensorrt-fp16": _tensorrt_fp16,
    "tensorrt-int8": _tensorrt_int8,
}


def build_variant(name: str, src: Path, work: Path, *, data: Dataset, host: Host, progress: bool) -> Built:
    """Build one variant; raises Skip with the reason when it does not apply."""
    return RECIPES[name](src, work, facts=model_facts(src), data=data, host=host, progress=progress)
