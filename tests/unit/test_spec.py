from __future__ import annotations

import numpy as np
import pytest

from brickwork.adapters import fit
from brickwork.errors import InvalidInput, SpecError
from brickwork.spec import DTYPES, Signature, TensorSpec, dtype_of, to_numpy_dtype


@pytest.mark.parametrize("row", list(DTYPES.values()), ids=lambda r: r.name)
def test_dtype_table_round_trips_every_spelling(row):
    assert dtype_of(row.name) == row.name
    assert dtype_of(row.onnx) == row.name
    assert dtype_of(row.onnx_name) == row.name
    if row.numpy is not None:
        assert dtype_of(np.dtype(row.numpy)) == row.name
        assert dtype_of(row.numpy) == row.name
        if row.name != "BYTES":
            assert to_numpy_dtype(row.name) == np.dtype(row.numpy)
            assert np.dtype(row.numpy).itemsize == row.size
    if row.torch is not None:
        assert dtype_of(f"torch.{row.torch}") == row.name


def test_dtype_of_strings_and_python_types():
    assert dtype_of(np.array(["a"]).dtype) == "BYTES"
    assert dtype_of(np.array([b"a"]).dtype) == "BYTES"
    assert dtype_of(str) == "BYTES"
    assert dtype_of(np.float32) == "FP32"
    with pytest.raises(SpecError, match="unknown dtype 'complex7'"):
        dtype_of("complex7")


def test_torch_dtype_matches_table():
    torch = pytest.importorskip("torch")
    for row in DTYPES.values():
        if row.torch is not None:
            assert dtype_of(getattr(torch, row.torch)) == row.name


def test_tensor_spec_normalises_and_checks():
    spec = TensorSpec("x", np.float32, [None, 3])
    assert spec == TensorSpec("x", "FP32", (-1, 3))
    assert str(spec) == "x: FP32[?, 3]"
    ok = np.zeros((5, 3), np.float32)
    assert spec.check(ok) is ok
    with pytest.raises(InvalidInput, match="expected datatype FP32, got FP64"):
        spec.check(np.zeros((5, 3)))
    with pytest.raises(InvalidInput, match=r"expected shape \[-1, 3\], got \[5, 4\]"):
        spec.check(np.zeros((5, 4), np.float32))
    with pytest.raises(InvalidInput, match="expected rank 2"):
        spec.check(np.zeros(5, np.float32))
    with pytest.raises(SpecError, match="bad dimension -3"):
        TensorSpec("x", "FP32", (-3,))


def test_signature_rejects_duplicates_and_round_trips():
    sig = Signature([TensorSpec("a", "INT64")], [TensorSpec("b", "BYTES", (-1, 2))])
    assert Signature.from_dict(sig.to_dict()) == sig
    assert sig.input("a").dtype == "INT64"
    with pytest.raises(SpecError, match="no output named 'c'; the outputs are \\['b'\\]"):
        sig.output("c")
    with pytest.raises(SpecError, match="duplicate input"):
        Signature([TensorSpec("a", "FP32"), TensorSpec("a", "FP32")], [])


@pytest.mark.parametrize(
    ("src", "dst", "kinds"),
    [
        (("INT32", (-1,)), ("INT64", (-1,)), ["cast"]),
        (("FP32", (-1, 4)), ("FP64", (-1, 4)), ["cast"]),
        (("FP32", (-1,)), ("FP32", (-1, 1)), ["expand_dims"]),
        (("FP32", (-1, 1)), ("FP64", (-1,)), ["cast", "squeeze"]),
        (("FP32", (-1, 3)), ("FP32", (8, 3)), []),
    ],
)
def test_fit_inserts_only_safe_adapters(src, dst, kinds):
    adapters = fit(TensorSpec("t", *src), TensorSpec("t", *dst))
    assert [a.kind for a in adapters] == kinds


def test_adapters_apply_exactly():
    adapters = fit(TensorSpec("t", "FP32", (-1, 1)), TensorSpec("t", "FP64", (-1,)))
    x = np.array([[1.5], [2.5]], np.float32)
    for a in adapters:
        x = a.apply(x)
    assert x.dtype == np.float64 and x.shape == (2,) and x.tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("src", "dst", "reason"),
    [
        (("FP64", (-1,)), ("FP32", (-1,)), "FP64 cannot become FP32 without loss"),
        (("INT64", (-1,)), ("INT32", (-1,)), "INT64 cannot become INT32"),
        (("BYTES", (-1,)), ("FP32", (-1,)), "decodes or encodes the text"),
        (("FP32", (-1, 3)), ("FP32", (-1, 4)), "shape [-1, 3] does not fit [-1, 4]"),
        (("FP32", (-1, 2)), ("FP32", (-1,)), "only a size-1 axis"),
    ],
)
def test_fit_refuses_lossy_or_reshaping_edges(src, dst, reason):
    out = fit(TensorSpec("t", *src), TensorSpec("t", *dst))
    assert isinstance(out, str) and reason in out
