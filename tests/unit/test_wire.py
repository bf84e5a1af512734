"""The worker pipe's wire format (engine/_wire.py): the two hot messages in a fixed struct
layout, everything else pickled, each decoded to exactly what was encoded."""

from __future__ import annotations

import numpy as np
import pytest

from brickwork.engine import _wire
from brickwork.engine._shm import TensorRef
from brickwork.engine._wire import decode, encode, frame
from brickwork.engine._worker import BatchDone, BatchFailed, Forget, Ping, Pong, RunBatch, Shutdown, WorkerReady
from brickwork.errors import ModelError

REFS = (
    TensorRef("pixels", "<f4", (32, 1, 32, 32), 0, "in"),
    TensorRef("scalar", "<i8", (), 131072, "in"),
    TensorRef("émoji 🙂", "|b1", (0, 7), 131136, "in"),
)


@pytest.mark.parametrize("msg", [
    RunBatch(1, "bw_1_in_00aa", "bw_1_out_11bb", REFS),
    RunBatch(2**62, "", "bw_1_out_11bb", ()),  # no inputs: a brick without any
    BatchDone(3, (TensorRef("logits", "<f4", (32, 10), 0, "out"), REFS[0]), {}, 0.00125, 1280, 1344),
    BatchDone(4, (), {}, 0.0, 0, 0),
], ids=["batch", "batch-empty", "done", "done-empty"])
def test_hot_messages_cross_as_structs_and_come_back_equal(msg) -> None:
    payload = encode(msg)
    assert payload[:1] in (b"B", b"D")  # not pickled
    for form in (payload, bytearray(payload), memoryview(payload)):
        assert decode(form) == msg
    assert decode(encode(msg)) == msg  # the second time from the layout cache: the same


def test_each_batch_keeps_its_own_sequence_number_and_compute_time_through_the_cache() -> None:
    """The cache holds the layout, never the per-batch fields: seq, compute_s, bytes."""
    got = [decode(encode(RunBatch(seq, "a", "b", REFS[:1]))).seq for seq in range(50)]
    assert got == list(range(50))
    done = [decode(encode(BatchDone(seq, REFS[:1], {}, seq / 1000, seq, 2 * seq))) for seq in range(50)]
    assert [(d.seq, d.compute_s, d.copied, d.out_needed) for d in done] == [
        (seq, seq / 1000, seq, 2 * seq) for seq in range(50)]


def test_different_layouts_decode_to_their_own_refs() -> None:
    """Two batches that differ only in a shape or an arena name are two layouts."""
    a = RunBatch(1, "in_a", "out_a", (TensorRef("x", "<f4", (8, 4), 0, "in"),))
    b = RunBatch(1, "in_a", "out_a", (TensorRef("x", "<f4", (9, 4), 0, "in"),))
    c = RunBatch(1, "in_b", "out_a", (TensorRef("x", "<f4", (8, 4), 0, "in"),))
    assert [decode(encode(m)) for m in (a, b, c, a)] == [a, b, c, a]


def test_the_layout_cache_stays_bounded() -> None:
    for rows in range(3 * _wire._CACHED):
        msg = RunBatch(rows, "i", "o", (TensorRef("x", "<f4", (rows, 4), 0, "in"),))
        assert decode(encode(msg)) == msg
    assert len(_wire._runs) <= _wire._CACHED


def test_messages_that_carry_tensors_and_the_rare_ones_are_pickled() -> None:
    texts = np.array(["a", "bé", ""], dtype=object)
    carried = [
        RunBatch(5, "", "", (), {"text": texts}),  # BYTES, or no room in /dev/shm
        BatchDone(5, REFS[:1], {"big": np.arange(6, dtype=np.float32)}, 0.1, 0, 4096),
    ]
    for msg in carried:
        payload = encode(msg)
        assert payload[:1] == b"P"
        back = decode(payload)
        assert type(back) is type(msg) and back.seq == msg.seq
        for name, value in msg.pickled.items():
            np.testing.assert_array_equal(back.pickled[name], value)
    for msg in (Ping(3), Pong(3), Shutdown(), Forget(("a", "b")), WorkerReady(42)):
        assert decode(encode(msg)) == msg
    failed = decode(encode(BatchFailed(9, ModelError("boom"))))
    assert failed.seq == 9 and isinstance(failed.error, ModelError) and "boom" in str(failed.error)


def test_a_truncated_or_foreign_payload_is_refused_not_misread() -> None:
    payload = encode(RunBatch(1, "in_x", "out_x", REFS))
    _wire._runs.clear()
    with pytest.raises(ValueError):
        decode(payload[:-3])
    with pytest.raises(ValueError, match="holds"):
        decode(payload + b"junk")
    with pytest.raises(ValueError, match="not a worker message"):
        decode(b"Zwhatever")


def test_frames_use_connection_lengths() -> None:
    assert frame(b"abc") == (3).to_bytes(4, "big")
    assert len(frame(memoryview(b"x" * 10))) == 4
