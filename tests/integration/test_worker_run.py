"""The worker's batch step (engine/_worker.py ``_run``) on real shared-memory arenas and a real
ONNX Runtime session, in this process: a batch layout the brick accepted once skips its input
checks after, any other layout is checked, and cached input views hand out fresh arrays."""

from __future__ import annotations

import gc
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


def _spy(brick: OnnxBrick, monkeypatch) -> dict[str, int]:
    """Counts the brick's unchecked calls, and the runs of its bound calls."""
    seen = {"unchecked": 0, "bound": 0}
    plain, bind = brick.call_unchecked, brick.bind_arrays

    def unchecked(inputs):
        seen["unchecked"] += 1
        return plain(inputs)

    def bound(inputs, outputs):
        call = bind(inputs, outputs)

        def run() -> None:
            seen["bound"] += 1
            call()

        return run

    monkeypatch.setattr(brick, "call_unchecked", unchecked)
    monkeypatch.setattr(brick, "bind_arrays", bound)
    return seen


def test_a_layout_the_brick_accepted_skips_its_checks_and_others_are_checked(affine, arenas, monkeypatch) -> None:
    """First batch of a layout: checked; second: unchecked (and bound); then the bound call,
    which must read each batch's new numbers and write its answer where the engine reads it."""
    ain, aout = arenas
    seen = _spy(affine, monkeypatch)
    maps, trusted = _Arenas(), _Trusted(affine)
    rng = np.random.default_rng(0)
    for seq in range(1, 6):
        x = rng.random((4, 3), dtype=np.float32)
        np.testing.assert_allclose(_answer(_run(affine, _batch(ain, aout, seq, x), maps, trusted), aout),
                                   _expect(x), rtol=1e-6)
        assert seen == {"unchecked": min(seq - 1, 1), "bound": max(seq - 2, 0)}
    for seq in (6, 7):  # FP64, same shape: a layout never accepted, so the brick checks it each time
        failed = _run(affine, _batch(ain, aout, seq, rng.random((4, 3))), maps, trusted)
        assert isinstance(failed, BatchFailed) and isinstance(failed.error, InvalidInput)
        assert "expected datatype FP32, got FP64" in str(failed.error)  # the brick's check, not ORT's
    assert seen == {"unchecked": 1, "bound": 3}
    for seq in (8, 9, 10):  # a new shape: checked, unchecked, bound
        x = rng.random((5, 3), dtype=np.float32)
        np.testing.assert_allclose(_answer(_run(affine, _batch(ain, aout, seq, x), maps, trusted), aout),
                                   _expect(x), rtol=1e-6)
    assert seen == {"unchecked": 2, "bound": 4}


def test_a_bound_call_never_outlives_an_arena_the_engine_replaced(affine, arenas, monkeypatch) -> None:
    """The request arena is replaced (the engine grew it: a new segment, the old one forgotten)
    and the same layout comes again: the answer must come from the new arena's numbers, not
    through a call still bound to the old mapping (whose numbers are the last batch's)."""
    ain, aout = arenas
    seen = _spy(affine, monkeypatch)
    maps, trusted = _Arenas(), _Trusted(affine)
    for seq in range(1, 4):
        x = np.full((4, 3), seq, np.float32)
        _answer(_run(affine, _batch(ain, aout, seq, x), maps, trusted), aout)
    assert seen["bound"] == 1
    grown = Arena(1 << 17, "in")
    try:
        ain.release()  # what the engine does to the arena it replaced, then it says Forget
        maps.forget((ain.name,))
        for seq in range(4, 8):
            x = np.full((4, 3), seq, np.float32)
            np.testing.assert_allclose(_answer(_run(affine, _batch(grown, aout, seq, x), maps, trusted), aout),
                                       _expect(x), rtol=1e-6)
        assert seen["bound"] == 4  # still trusted: unchecked once, then bound again to the new arena
        gc.collect()
        assert ain.name not in Path("/proc/self/maps").read_text()  # the old mapping is gone
    finally:
        grown.release()


def test_an_output_shape_that_depends_on_the_values_unbinds_and_is_answered(tmp_path: Path, arenas,
                                                                              monkeypatch) -> None:
    """NonZero's output length depends on the numbers: a bound call whose preallocated output
    no longer fits raises inside ONNX Runtime, the batch is run the plain way, and that layout
    is not bound again (or every other batch would run twice)."""
    graph = helper.make_graph([helper.make_node("NonZero", ["x"], ["y"])], "nz",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, "k"])])
    path = tmp_path / "nz.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    brick = OnnxBrick(path, intra_op_threads=1)
    brick.load()
    ain, aout = arenas
    seen = _spy(brick, monkeypatch)
    maps, trusted = _Arenas(), _Trusted(brick)
    rows = [[1, 0, 2, 0], [3, 0, 4, 0], [5, 0, 6, 0], [1, 2, 3, 0], [0, 0, 7, 0], [1, 0, 2, 0], [0, 0, 0, 1]]
    for seq, x in enumerate(rows):
        x = np.array(x, np.float32)
        got = _answer(_run(brick, _batch(ain, aout, seq, x), maps, trusted), aout)
        np.testing.assert_array_equal(got, np.nonzero(x)[0][None, :])
    assert seen == {"unchecked": 5, "bound": 2}  # bound after the second; one fit, one did not


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
