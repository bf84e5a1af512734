"""The Ray hot path's frame: one bytes object carrying a batch of plain tensors (no pickle)."""

from __future__ import annotations

import numpy as np
import pytest

from brickwork.cluster._frames import FRAME_MAX_BYTES, FrameError, frameable, pack, unpack


def test_tensors_and_meta_round_trip_with_their_dtypes_and_shapes():
    tensors = {
        "x": np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],  # not contiguous
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 4), np.int64),
        "big_endian": np.arange(3, dtype=">i2"),
        "day": np.array(["2020-01-01"], dtype="M8[D]"),
        "flag": np.array([True, False]),
    }
    out, meta = unpack(pack(tensors, {"c": 0.25, "keep": ["x"]}))
    assert meta == {"c": 0.25, "keep": ["x"]}
    assert list(out) == list(tensors)
    for name, want in tensors.items():
        assert out[name].dtype == want.dtype and out[name].shape == want.shape, name
        np.testing.assert_array_equal(out[name], want)


def test_arrays_are_read_in_place_aligned_and_read_only():
    frame = pack({"a": np.ones(3, np.float64), "b": np.arange(5, dtype=np.int8), "c": np.ones(2)}, {})
    out, _ = unpack(frame)
    for value in out.values():
        assert value.ctypes.data % 16 == 0 or value.size == 0
        assert not value.flags.writeable
        assert value.base is not None  # a view of the frame, not a copy


def test_only_plain_tensors_within_the_limit_are_frameable():
    assert frameable({"x": np.zeros(4, np.float32)})
    assert not frameable({"s": np.array(["a"], dtype=object)})
    assert not frameable({"x": [1, 2, 3]})
    assert not frameable({"x": np.zeros(FRAME_MAX_BYTES + 1, np.uint8)})


@pytest.mark.parametrize("frame", [
    b"",
    b"XXXX\x00\x00\x00\x00",
    pack({"x": np.zeros(4, np.float32)}, {})[:-8],  # truncated
    pack({"x": np.zeros(4, np.float32)}, {}).replace(b"<f4", b"|O8"),  # object dtype
    pack({"x": np.zeros(4, np.float32)}, {}).replace(b'"m":{}', b'"m":[]'),
])
def test_a_malformed_frame_is_refused(frame):
    with pytest.raises(FrameError):
        unpack(frame)
