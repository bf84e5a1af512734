"""TorchBrick: declared signature, eval + inference mode, output forms, TorchScript, recipe."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import brick_from_spec

torch = pytest.importorskip("torch")
from brickwork.bricks.torch import TorchBrick  # noqa: E402


class Scorer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 3)
        self.drop = torch.nn.Dropout(0.9)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.drop(self.linear(x)) + bias.unsqueeze(1)
        return {"probs": torch.softmax(logits, dim=-1), "top": logits.argmax(dim=-1)}


SIG = {"inputs": {"x": ("FP32", (-1, 4)), "bias": "FP32"},
       "outputs": {"probs": ("FP32", (-1, 3)), "top": "INT64"}}


def _expected(module: Scorer, x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = module.linear(torch.from_numpy(x)) + torch.from_numpy(bias)[:, None]
        return torch.softmax(logits, dim=-1).numpy()


def test_declared_signature_and_dict_outputs() -> None:
    module = Scorer()
    brick = TorchBrick(module, **SIG)
    assert str(brick.signature) == "(x: FP32[?, 4], bias: FP32[?]) -> (probs: FP32[?, 3], top: INT64[?])"
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    bias = np.zeros(5, np.float32)
    out = brick({"x": x, "bias": bias})
    # eval mode: dropout(0.9) is off, so the answer is deterministic and exact
    np.testing.assert_allclose(out["probs"], _expected(module, x, bias), rtol=1e-6)
    assert out["top"].dtype == np.int64 and out["top"].tolist() == out["probs"].argmax(1).tolist()
    assert not module.training


def test_tuple_and_single_tensor_outputs() -> None:
    pair = TorchBrick(lambda a: (a * 2, a.sum(dim=1)), inputs={"a": ("FP64", (-1, 2))},
                      outputs={"double": ("FP64", (-1, 2)), "total": "FP64"}, name="pair")
    out = pair({"a": np.array([[1.0, 2.0]])})
    assert out["double"].tolist() == [[2.0, 4.0]] and out["total"].tolist() == [3.0]
    neg = TorchBrick(torch.nn.Identity(), inputs=[bw.TensorSpec("v", "INT32", (-1,))],
                     outputs=[bw.TensorSpec("same", "INT32", (-1,))])
    assert neg({"v": np.array([1, 2], np.int32)})["same"].tolist() == [1, 2]


def test_runs_under_inference_mode() -> None:
    seen = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.is_inference_mode_enabled())
        return x

    TorchBrick(probe, inputs={"x": "FP32"}, outputs={"y": "FP32"})({"x": np.ones(2, np.float32)})
    assert seen == [True]


def test_output_dtype_must_match_the_declaration() -> None:
    brick = TorchBrick(torch.nn.Identity(), inputs={"x": "FP32"}, outputs={"y": "FP64"})
    with pytest.raises(bw.ModelError, match="output 'y' is FP32, but its declared datatype is FP64"):
        brick({"x": np.ones(2, np.float32)})


def test_bad_inputs_and_module_failures() -> None:
    brick = TorchBrick(Scorer(), **SIG)
    with pytest.raises(bw.InvalidInput, match=r"input 'x'.*expected shape \[-1, 4\]"):
        brick({"x": np.ones((2, 5), np.float32), "bias": np.ones(2, np.float32)})
    with pytest.raises(bw.InvalidInput, match="needs input 'bias'"):
        brick({"x": np.ones((2, 4), np.float32)})
    # bias of another batch size: the module itself raises -> ModelError with the cause
    with pytest.raises(bw.ModelError, match=r"\(torch\) raised RuntimeError") as info:
        brick({"x": np.ones((2, 4), np.float32), "bias": np.ones(3, np.float32)})
    assert isinstance(info.value.__cause__, RuntimeError)


def test_declaration_errors() -> None:
    with pytest.raises(bw.ConfigError, match="needs inputs="):
        TorchBrick(torch.nn.Identity(), inputs=None, outputs={"y": "FP32"})
    with pytest.raises(bw.ConfigError, match="BYTES; torch has no string tensors"):
        TorchBrick(torch.nn.Identity(), inputs={"text": "BYTES"}, outputs={"y": "FP32"})
    with pytest.raises(bw.ConfigError, match="does not exist"):
        TorchBrick("missing.pt", inputs={"x": "FP32"}, outputs={"y": "FP32"})


def test_torchscript_file(tmp_path: Path) -> None:
    module = Scorer().eval()
    path = tmp_path / "scorer.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream
        torch.jit.save(torch.jit.script(module), str(path))
        brick = TorchBrick(path, **SIG)
        x, bias = np.ones((2, 4), np.float32), np.zeros(2, np.float32)
        out = brick({"x": x, "bias": bias})
    assert brick.name == "scorer"
    np.testing.assert_allclose(out["probs"], _expected(module, x, bias), rtol=1e-6)
    assert brick.spec().config["torch"] == str(path.resolve())


def test_exported_program_file(tmp_path: Path) -> None:
    module = Scorer().eval()
    path = tmp_path / "scorer.pt2"
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.zeros(2, 4), torch.zeros(2)),
                                  dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(path))
    x, bias = np.ones((5, 4), np.float32), np.zeros(5, np.float32)
    out = TorchBrick(path, **SIG)({"x": x, "bias": bias})
    np.testing.assert_allclose(out["probs"], _expected(module, x, bias), rtol=1e-6)


def test_spec_exports_an_in_memory_module() -> None:
    module = Scorer()
    brick = TorchBrick(module, name="scorer", **SIG)
    spec = brick.spec()
    assert spec.config["torch"].endswith("scorer.pt2") and "pickled" not in spec.config
    assert module.training  # exporting did not change the user's module
    again = brick_from_spec(spec)
    x, bias = np.ones((3, 4), np.float32), np.ones(3, np.float32)
    np.testing.assert_allclose(again({"x": x, "bias": bias})["probs"],
                               brick({"x": x, "bias": bias})["probs"], rtol=1e-6)


class Unscriptable(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy() * 2)  # numpy inside: torch.export refuses it


def test_spec_falls_back_to_torch_save_of_the_users_module() -> None:
    brick = TorchBrick(Unscriptable(), inputs={"x": "FP64"}, outputs={"y": "FP64"})
    spec = brick.spec()
    assert spec.config["pickled"] is True
    assert brick_from_spec(spec)({"x": np.array([1.5])})["y"].tolist() == [3.0]


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    brick = TorchBrick(torch.nn.Identity(), inputs={"x": "FP32"}, outputs={"y": "FP32"},
                       device="cuda:0")
    with pytest.raises(bw.ConfigError, match="sees no CUDA device"):
        brick.load()


def test_torch_in_a_pipeline() -> None:
    module = Scorer()
    graph = bw.torch(module, name="scorer", **SIG) >> bw.function(
        lambda top: int(top) * 10, inputs={"top": "INT64"}, outputs={"tens": "INT64"},
        name="tens")
    with graph.compile() as pipeline:
        x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
        out = pipeline.infer({"x": x, "bias": [0.0] * 6})
    assert out["tens"].tolist() == (_expected(module, x, np.zeros(6, np.float32)).argmax(1) * 10).tolist()


def test_a_port_declared_without_a_datatype_is_refused() -> None:
    """A bare name became FP64 silently (a module has no hints to take the type from)."""
    with pytest.raises(bw.ConfigError, match="'y' is declared without a datatype"):
        TorchBrick(torch.nn.Identity(), inputs={"x": "FP32"}, outputs=["y"])
