"""accel's logic without models: the budget parser, CPU feature detection, the choice between
measured variants, the quality comparison, the YAML patch and the progress bar."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml

from brickwork.accel._host import Host, _cpu_flags
from brickwork.accel._measure import compare
from brickwork.accel._optimize import OptimizeConfig, VariantResult, _choose
from brickwork.accel._patch import patch_text
from brickwork.accel._progress import Progress
from brickwork.cli._optimize import parse_budget
from brickwork.errors import ConfigError


def test_budget_takes_percent_or_fraction_and_refuses_nonsense():
    assert parse_budget("0.5%") == pytest.approx(0.005)
    assert parse_budget("0.01") == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="0.5%"):
        parse_budget("half")
    with pytest.raises(ConfigError):
        parse_budget("150%")


def test_vnni_is_read_from_the_cpu_flags(tmp_path: Path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n")
    flags = _cpu_flags(info)
    assert "avx2" in flags
    assert not Host(flags, ("CPUExecutionProvider",)).vnni
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert Host(_cpu_flags(info), ()).vnni
    assert _cpu_flags(tmp_path / "missing") == frozenset()
    assert Host(frozenset(), ("CUDAExecutionProvider", "CPUExecutionProvider")).gpu_providers == (
        "CUDAExecutionProvider",)


def _pending(name: str, speedup: float, loss: float) -> VariantResult:
    return VariantResult(name, "baseline" if name == "fp32" else "pending", throughput=100 * speedup,
                         speedup=speedup, loss=loss, batch_size=8, agreement=1 - loss)


def test_the_fastest_variant_within_budget_is_chosen():
    results = {v.name: v for v in (_pending("fp32", 1.0, 0.0), _pending("int8-dynamic", 3.0, 0.02),
                                   _pending("int8-mixed", 2.0, 0.001), _pending("ort-opt", 1.2, 0.0))}
    chosen, why = _choose(results, OptimizeConfig(budget=0.005))
    assert chosen == "int8-mixed"
    assert "2.00x" in why
    assert results["int8-dynamic"].status == "over-budget"
    assert "2.00% > budget 0.50%" in results["int8-dynamic"].reason
    assert results["ort-opt"].status == "accepted"


def test_fp32_is_kept_with_reasons_when_nothing_is_faster_and_accurate():
    results = {v.name: v for v in (_pending("fp32", 1.0, 0.0), _pending("fp16", 0.8, 0.0),
                                   _pending("int8-dynamic", 3.0, 0.5), _pending("ort-opt", 1.02, 0.0))}
    results["cuda-fp32"] = VariantResult("cuda-fp32", "skipped", "this onnxruntime has no CUDAExecutionProvider")
    chosen, why = _choose(results, OptimizeConfig(budget=0.005))
    assert chosen == "fp32"
    assert why.startswith("kept FP32")
    for name in ("fp16: slower", "int8-dynamic: over-budget", "ort-opt: slower"):
        assert name in why
    assert why.endswith("skipped: cuda-fp32")


def test_quality_refuses_inf_and_counts_agreement_by_cosine():
    ref = {"y": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32), "label": np.array([0, 1, 0])}
    close = {"y": ref["y"] + 0.001, "label": ref["label"]}
    q = compare(close, ref, np.array([0, 1, 1]), min_cosine=0.99, output=None)
    assert q.finite and q.agreement == 1.0 and q.accuracy == pytest.approx(2 / 3)
    assert q.max_abs_dev == pytest.approx(0.001, rel=1e-3)
    turned = {"y": np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]], np.float32), "label": ref["label"]}
    assert compare(turned, ref, None, min_cosine=0.99, output=None).agreement == pytest.approx(2 / 3)
    broken = {"y": np.array([[np.inf, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32), "label": ref["label"]}
    bad = compare(broken, ref, None, min_cosine=0.99, output=None)
    assert not bad.finite and bad.nonfinite_output == "y"


PIPE = """\
name: p   # a comment that must survive
bricks:
  enc:   {onnx: models/enc.onnx, replicas: 2}   # the encoder
  head:
    onnx: models/head.onnx
    batching: {max_batch_size: 8}
  net:   {torch: models/net.pt, inputs: {x: FP32}, outputs: {y: FP32}, replicas: 3}
graph: enc >> head >> net
"""


def test_patch_changes_only_the_path_of_an_onnx_brick(tmp_path: Path):
    new = patch_text(PIPE, "enc", tmp_path / "models" / "enc.int8-mixed.onnx", base_dir=tmp_path)
    assert "enc:   {onnx: models/enc.int8-mixed.onnx, replicas: 2}   # the encoder" in new
    assert "# a comment that must survive" in new
    assert new.replace("enc.int8-mixed.onnx", "enc.onnx") == PIPE


def test_patch_adds_options_in_block_and_flow_style(tmp_path: Path):
    new = patch_text(PIPE, "head", tmp_path / "models" / "head.cuda-fp16.onnx", base_dir=tmp_path,
                     options={"device": "cuda"})
    doc = yaml.safe_load(new)
    assert doc["bricks"]["head"] == {"onnx": "models/head.cuda-fp16.onnx", "device": "cuda",
                                     "batching": {"max_batch_size": 8}}
    flow = patch_text(PIPE, "enc", tmp_path / "e.onnx", base_dir=tmp_path, options={"device": "cuda"})
    assert yaml.safe_load(flow)["bricks"]["enc"] == {"onnx": "e.onnx", "device": "cuda", "replicas": 2}


def test_patch_turns_a_torch_brick_into_an_onnx_brick_keeping_stage_options(tmp_path: Path):
    new = patch_text(PIPE, "net", tmp_path / "models" / "net.onnx", base_dir=tmp_path)
    assert yaml.safe_load(new)["bricks"]["net"] == {"onnx": "models/net.onnx", "replicas": 3}
    with pytest.raises(ConfigError, match="no brick 'nope'"):
        patch_text(PIPE, "nope", tmp_path / "x.onnx", base_dir=tmp_path)


def test_progress_prints_one_final_line_off_a_terminal():
    out = io.StringIO()
    with Progress("calibration batches", 4, stream=out) as bar:
        for _ in range(4):
            bar.advance()
    assert out.getvalue().count("\n") == 1
    assert "calibration batches 4/4" in out.getvalue()
    quiet = io.StringIO()
    with Progress("x", 2, enabled=False, stream=quiet) as bar:
        bar.advance()
    assert quiet.getvalue() == ""


def test_config_refuses_unknown_variants_and_bad_budgets():
    with pytest.raises(ConfigError, match="unknown variant"):
        OptimizeConfig(variants=("int4",))
    with pytest.raises(ConfigError, match="budget"):
        OptimizeConfig(budget=5.0)


def test_patch_gives_a_tensorrt_variant_its_providers(tmp_path: Path):
    providers = [["TensorrtExecutionProvider", {"trt_fp16_enable": True}], "CUDAExecutionProvider",
                 "CPUExecutionProvider"]
    new = patch_text(PIPE, "enc", tmp_path / "models" / "enc.onnx", base_dir=tmp_path,
                     options={"providers": providers})
    entry = yaml.safe_load(new)["bricks"]["enc"]
    assert entry == {"onnx": "models/enc.onnx", "providers": providers, "replicas": 2}
    from brickwork.bricks.onnx import OnnxBrick

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "enc.onnx").write_bytes(b"")
    brick = OnnxBrick.from_config(dict(entry), tmp_path, "enc")  # the entry is one OnnxBrick accepts
    assert brick.spec().config["providers"] == providers
