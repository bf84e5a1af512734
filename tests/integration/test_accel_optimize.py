"""brickwork optimize on real ONNX Runtime: the digits CNN (labels, static QDQ INT8), MiniLM
(no labels, INT8 MatMuls), a model whose FP16 overflows (refused), a run where nothing may be
swapped in (FP32 kept, nothing written), a torch brick exported with a parity check, and the
CLI writing its JSON report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brickwork.accel import OptimizeConfig, optimize
from brickwork.accel import report_table as table
from brickwork.errors import ConfigError
from brickwork.graph import load_pipeline

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxconverter_common")

ROOT = Path(__file__).resolve().parents[2]
FAST = dict(measure_s=0.6, rounds=2, progress=False)


def _fragile_model(path: Path) -> None:
    """y = sqrt((x @ W)^2) with x @ W ~ 400: fine in FP32, but the square (1.6e5) overflows
    FP16's 65504 to inf."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.full((4, 4), 100.0, np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Mul", ["h", "h"], ["g"]),
             helper.make_node("Sqrt", ["g"], ["y"])]
    graph = helper.make_graph(
        nodes, "fragile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture()
def fragile(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    _fragile_model(tmp_path / "fragile.onnx")
    (tmp_path / "pipeline.yaml").write_text(
        "name: fragile\nbricks:\n  f: {onnx: fragile.onnx}   # keep me\ngraph: f\n")
    data = {"x": np.random.default_rng(0).uniform(0.5, 1.5, (64, 4)).astype(np.float32)}
    return tmp_path / "pipeline.yaml", data


def test_fp16_overflow_is_refused_with_the_reason(fragile):
    pipeline, data = fragile
    (report,) = optimize(pipeline, data=data, config=OptimizeConfig(variants=("fp16", "ort-opt"), **FAST))
    fp16 = report.variant("fp16")
    assert fp16.status == "refused"
    peak = float(((data["x"].sum(axis=1) * 100.0) ** 2).max())  # the square, before its sqrt
    assert f"fragile in FP16: tensor 'g' reaches {peak:.3g}" in fp16.reason and "65504" in fp16.reason
    assert report.variant("ort-opt").status in ("chosen", "slower", "accepted")
    assert report.chosen != "fp16"
    assert "refused: fragile in FP16" in table(report)


def test_fp32_is_kept_and_nothing_written_when_no_variant_qualifies(fragile):
    pipeline, data = fragile
    before = sorted(p.name for p in pipeline.parent.iterdir())
    cfg = OptimizeConfig(variants=("ort-opt", "int8-dynamic", "fp16"), min_speedup=50.0, **FAST)
    (report,) = optimize(pipeline, data=data, config=cfg)
    assert report.chosen == "fp32"
    assert report.why.startswith("kept FP32")
    assert "ort-opt: slower" in report.why and "fp16: refused" in report.why
    assert report.variant("int8-dynamic").status in ("slower", "over-budget")
    after = sorted(p.name for p in pipeline.parent.iterdir())
    assert set(after) - set(before) == {"fragile.optimize.json", "fragile.optimize.png"}
    saved = json.loads((pipeline.parent / "fragile.optimize.json").read_text())
    assert saved["chosen"] == "fp32" and {v["name"] for v in saved["variants"]} >= {"fp32", "fp16"}


def test_cli_writes_the_json_report_and_an_optimized_yaml(fragile, tmp_path: Path):
    pipeline, data = fragile
    np.savez(tmp_path / "calib.npz", **data)
    out = subprocess.run(
        [sys.executable, "-m", "brickwork.cli", "optimize", str(pipeline), "--data", str(tmp_path / "calib.npz"),
         "--variants", "ort-opt,fp16", "--min-speedup", "0.01", "--measure-s", "0.5", "--no-progress",
         "--json", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "choice: ort-opt" in out.stdout
    (report,) = json.loads((tmp_path / "report.json").read_text())
    assert report["chosen"] == "ort-opt"
    new = (pipeline.parent / "pipeline.optimized.yaml").read_text()
    assert "f: {onnx: fragile.ort-opt.onnx}   # keep me" in new
    assert (pipeline.parent / "fragile.ort-opt.onnx").is_file()
    assert pipeline.read_text().count("fragile.onnx") == 1  # the original is untouched without --write
    with load_pipeline(pipeline.parent / "pipeline.optimized.yaml") as pipe:
        got = pipe.infer(data)["y"]
    np.testing.assert_allclose(got, data["x"] @ np.full((4, 4), 100.0, np.float32), rtol=1e-5)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("skl2onnx")
    from examples.digits_ensemble import build

    paths = build.build()
    root = tmp_path_factory.mktemp("digits")
    (root / ".models").mkdir()
    shutil.copyfile(paths["cnn"], root / ".models" / "cnn.onnx")
    (root / "pipeline.yaml").write_text(
        "name: digits\ndefaults: {batching: {max_batch_size: 128}}\nbricks:\n  cnn: {onnx: .models/cnn.onnx}\n"
        "graph: cnn\n")
    return root


def test_digits_cnn_gets_static_int8_and_the_choice_stays_within_budget_on_held_out_data(digits: Path):
    from examples.digits_ensemble.models import load_split

    x_tr, x_te, _, y_te = load_split()
    (report,) = optimize(digits / "pipeline.yaml", brick="cnn", data={"input": x_tr[:256]},
                         eval_data={"input": x_te, "label": y_te},
                         config=OptimizeConfig(variants=("ort-opt", "int8-dynamic", "int8-static", "fp16", "cuda-fp32",
                                                               "tensorrt-int8"), **FAST))
    fp32 = report.variant("fp32")
    assert report.labels and report.eval_rows == 540
    assert fp32.accuracy is not None and fp32.accuracy > 0.97  # NOTES.md: 0.9852
    assert fp32.throughput and fp32.throughput > 0 and fp32.latency_s and fp32.batch_size == 128
    assert fp32.size_bytes == (digits / ".models" / "cnn.onnx").stat().st_size
    assert report.variant("int8-dynamic").status == "skipped"
    assert "ConvInteger" in report.variant("int8-dynamic").reason
    if "CUDAExecutionProvider" not in ort.get_available_providers():  # GPU variants say why, never emulate
        gpu = [v for v in report.variants if v.name.startswith(("cuda", "tensorrt"))]
        assert gpu and all(v.status == "skipped" and "onnxruntime-gpu" in v.reason for v in gpu)
    static = report.variant("int8-static")
    assert static.accuracy is not None and static.size_bytes is not None and static.size_bytes < fp32.size_bytes
    assert ("reduce_range=off" in static.notes) == ("vnni" in report.host)
    chosen = report.variant(report.chosen)
    assert chosen.loss is not None and chosen.loss <= report.budget
    if report.chosen != "fp32":  # check the written file on the held-out rows ourselves
        written = Path(report.written["model"])
        session = ort.InferenceSession(str(written), providers=["CPUExecutionProvider"])
        label = session.run(["label"], {"input": x_te})[0]
        assert float((label == y_te).mean()) >= fp32.accuracy - report.budget


@pytest.mark.slow
def test_minilm_int8_is_chosen_only_within_the_cosine_budget(tmp_path: Path):
    pytest.importorskip("tokenizers")
    from examples.text_router import build, embed, optimize_data

    model = build.build()
    (tmp_path / ".models").mkdir()
    shutil.copyfile(model, tmp_path / ".models" / "minilm.onnx")
    shutil.copyfile(model.parent / "tokenizer.json", tmp_path / ".models" / "tokenizer.json")
    calib, held_out = optimize_data.write(tmp_path / ".models")
    (tmp_path / "pipeline.yaml").write_text(
        "name: m\ndefaults: {batching: {max_batch_size: 64}}\nbricks:\n  minilm: {onnx: .models/minilm.onnx}\n"
        "graph: minilm\n")
    rows = {k: v[:96] for k, v in np.load(held_out).items()}  # 96 of the 256 held-out rows: quicker
    (report,) = optimize(tmp_path / "pipeline.yaml", data=calib, eval_data=rows,
                         config=OptimizeConfig(variants=("int8-dynamic", "int8-mixed"), measure_s=0.5, rounds=2,
                                               batch_size=32, progress=False))
    assert not report.labels and report.eval_rows == 96
    for name in ("int8-dynamic", "int8-mixed"):
        v = report.variant(name)
        assert v.size_bytes is not None and v.size_bytes < report.variant("fp32").size_bytes
        if v.status in ("chosen", "accepted"):
            assert v.agreement is not None and v.agreement >= 0.995
    assert report.chosen in ("fp32", "int8-dynamic", "int8-mixed")
    if report.chosen == "fp32":
        return
    # the sentence embeddings the pipeline would publish stay >= 0.99 cosine on every held-out text
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, rows)[0]
    new = ort.InferenceSession(report.written["model"], providers=["CPUExecutionProvider"]).run(None, rows)[0]
    a = embed.l2_normalize(embed.mean_pool(ref, rows["attention_mask"]))
    b = embed.l2_normalize(embed.mean_pool(new, rows["attention_mask"]))
    assert float((a * b).sum(axis=1).min()) >= 0.99


def test_a_torch_brick_is_exported_with_parity_and_patched_into_an_onnx_brick(tmp_path: Path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)).eval()
    torch.jit.save(torch.jit.script(net), str(tmp_path / "net.pt"))
    (tmp_path / "pipeline.yaml").write_text(
        "name: t\nbricks:\n  net: {torch: net.pt, inputs: {x: [FP32, [-1, 8]]}, outputs: {y: [FP32, [-1, 3]]}, "
        "replicas: 2}\ngraph: net\n")
    data = {"x": np.random.default_rng(1).standard_normal((96, 8)).astype(np.float32)}
    (report,) = optimize(tmp_path / "pipeline.yaml", data=data,
                         config=OptimizeConfig(variants=("ort-opt",), min_speedup=0.01, **FAST))
    assert report.export is not None and report.export["max_abs_diff"]["y"] < 1e-5
    assert (tmp_path / "net.onnx").is_file()
    import yaml

    patched = yaml.safe_load((tmp_path / "pipeline.optimized.yaml").read_text())
    assert patched["bricks"]["net"] == {"onnx": "net.ort-opt.onnx", "replicas": 2}
    with load_pipeline(tmp_path / "pipeline.optimized.yaml") as pipe:
        got = pipe.infer({"x": data["x"][:4]})["y"]
    with torch.no_grad():
        want = net(torch.from_numpy(data["x"][:4])).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_write_patches_the_pipeline_in_place_and_without_it_a_changed_file_is_refused(fragile):
    pipeline, data = fragile
    cfg = OptimizeConfig(variants=("ort-opt",), min_speedup=0.01, **FAST)
    model = pipeline.parent / "fragile.ort-opt.onnx"
    model.write_bytes(b"an older file the user kept")
    with pytest.raises(ConfigError, match="fragile.ort-opt.onnx' exists and differs; pass --write"):
        optimize(pipeline, data=data, config=cfg)
    assert model.read_bytes() == b"an older file the user kept"
    assert pipeline.read_text().count("fragile.onnx") == 1
    (report,) = optimize(pipeline, data=data, config=cfg, write=True)
    assert report.written["yaml"] == str(pipeline)
    assert "f: {onnx: fragile.ort-opt.onnx}   # keep me" in pipeline.read_text()
    assert not (pipeline.parent / "pipeline.optimized.yaml").exists()
    with load_pipeline(pipeline) as pipe:
        np.testing.assert_allclose(pipe.infer(data)["y"], data["x"] @ np.full((4, 4), 100.0, np.float32), rtol=1e-5)


def test_a_sklearn_brick_is_exported_as_fp32_onnx_and_the_patched_pipeline_serves(tmp_path: Path):
    pytest.importorskip("skl2onnx")
    joblib = pytest.importorskip("joblib")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from brickwork.accel import export_brick

    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=2000).fit(x[:1000], y[:1000])
    joblib.dump(model, tmp_path / "lr.joblib")
    (tmp_path / "pipeline.yaml").write_text(
        "name: s\nbricks:\n  lr: {sklearn: lr.joblib, method: predict_proba}\ngraph: lr\n")
    held_out = {"features": x[1000:1300], "label": y[1000:1300]}
    out = export_brick(tmp_path / "pipeline.yaml", brick="lr", target="onnx", out=tmp_path / "exported.onnx",
                       data=held_out)
    assert [i.name for i in ort.InferenceSession(str(out)).get_inputs()] == ["features"]
    (report,) = optimize(tmp_path / "pipeline.yaml", data=held_out, eval_data=held_out,
                         config=OptimizeConfig(variants=("ort-opt",), min_speedup=0.01, **FAST))
    assert report.export is not None and report.export["max_abs_diff"]["probabilities"] < 1e-5
    assert report.export["mismatches"] == {"label": 0}
    assert report.variant("fp32").accuracy == pytest.approx(float((model.predict(x[1000:1300]) == y[1000:1300]).mean()))
    with load_pipeline(tmp_path / "pipeline.optimized.yaml") as pipe:
        got = pipe.infer({"features": x[1300:1310].astype(np.float32)})
    np.testing.assert_array_equal(got["label"], model.predict(x[1300:1310]))
