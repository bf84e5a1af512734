"""The worker's batch step (engine/_worker.py ``_run``) on real shared-memory arenas and a real
ONNX Runtime session, in this process: a batch layout the brick accepted once skips its input
checks after, any other layout is checked, and cached input views hand out fresh arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brickwork.bricks.onnx import OnnxBrick
from brickwork.engine._messages import BatchDone, BatchFailed, RunBatch
from brickwork.engine._shm import Arena, TensorRef, WorkerArena
from brickwork.engine._worker import _Arenas, _run, _Trusted
from brickwork.errors import InvalidInput

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402


@pytest.fixture
def affine(tmp_path: Path) -> OnnxBrick:
    """score = x @ W + b with x: FP32 [N, 3] -> score: FP32 [N, 2]."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [1, 0, 0, 1, 1, 1])
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [0.5, -0.5])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["score"])],
        "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 2])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "affine.onnx"
    onnx.save(model, str(path))
    brick = OnnxBrick(path, intra_op_threads=1)
    brick.load()
    return brick


@pytest.fixture
def arenas():
    made = [Arena(1 << 16, "in"), Arena(1 << 16, "out")]
    yield made
    for a in made:
        a.release()


def _expect(x: np.ndarray) -> np.ndarray:
    w = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    return (x.astype(np.float32) @ w + np.array([0.5, -0.5], np.float32)).astype(np.float32)


def _batch(arena: Arena, out: Arena, seq: int, x: np.ndarray) -> RunBatch:
    ref = TensorRef("x", x.dtype.str, x.shape, 0, "in")
    arena.view(ref)[...] = x
    return RunBatch(seq, arena.name, out.name, (ref,), {})


def _answer(done: BatchDone | BatchFailed, out: Arena) -> np.ndarray:
    assert isinstance(done, BatchDone), done
    (ref,) = done.outputs
    return out.view(ref).copy()


def test_a_layout_the_brick_accepted_skips_its_checks_and_others_are_checked(affine, arenas, monkeypatch) -> None:
    ain, aout = arenas
    unchecked = []
    plain = affine.call_unchecked
    monkeypatch.setattr(affine, "call_unchecked", lambda inputs: unchecked.append(1) or plain(inputs))
    maps, trusted = _Arenas(), _Trusted(affine)
    rng = np.random.default_rng(0)
    for seq in range(1, 4):  # the first batch is checked, the next two of its layout are not
        x = rng.random((4, 3), dtype=np.float32)
        np.testing.assert_allclose(_answer(_run(affine, _batch(ain, aout, seq, x), maps, trusted), aout),
                                   _expect(x), rtol=1e-6)
        assert len(unchecked) == seq - 1
    for seq in (4, 5):  # FP64, same shape: a layout never accepted, so the brick checks it each time
        failed = _run(affine, _batch(ain, aout, seq, rng.random((4, 3))), maps, trusted)
        assert isinstance(failed, BatchFailed) and isinstance(failed.error, InvalidInput)
        assert "expected datatype FP32, got FP64" in str(failed.error)  # the brick's check, not ORT's
        assert len(unchecked) == 2
    x = rng.random((5, 3), dtype=np.float32)  # a new shape: checked once, then trusted
    for seq in (6, 7):
        np.testing.assert_allclose(_answer(_run(affine, _batch(ain, aout, seq, x), maps, trusted), aout),
                                   _expect(x), rtol=1e-6)
    assert len(unchecked) == 3


def test_called_directly_the_brick_always_checks(affine) -> None:
    for _ in range(2):  # nothing is remembered outside a worker: a good call, then a bad one
        assert affine({"x": np.zeros((2, 3), np.float32)})["score"].shape == (2, 2)
    with pytest.raises(InvalidInput, match="expected datatype FP32"):
        affine({"x": np.zeros((2, 3))})
    with pytest.raises(InvalidInput, match="missing"):
        affine({"y": np.zeros((2, 3), np.float32)})


def test_cached_views_are_fresh_arrays_over_the_same_memory(arenas) -> None:
    ain, _ = arenas
    mapped = WorkerArena(ain.name)
    refs = (TensorRef("x", "<f4", (4, 3), 0, "in"), TensorRef("z", "<i8", (4,), 64, "in"))
    first = mapped.views(refs)
    first["x"].shape = (12,)  # a brick reshaping its input in place
    ain.view(refs[0])[...] = 7
    second = mapped.views(refs)
    assert second["x"].shape == (4, 3) and second["x"] is not first["x"]
    assert (second["x"] == 7).all()
    assert mapped.offset_of(second["z"]) == 64  # still known as a view of the arena (pass-throughs)
