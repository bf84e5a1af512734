"""The worker pipe's wire (engine/_wire.py) against real worker processes: every caller gets
its own answer whatever the batch layouts, struct and pickled messages interleave in order, and
a pipe that goes out of step (an answer for the wrong batch, bytes that do not decode) costs
the worker, never a wrong answer."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from tests.integration import engine_bricks as eb

import brickwork as bw
from brickwork.engine._shm import TensorRef
from brickwork.engine._wire import Channel, encode, frame
from brickwork.engine._worker import BatchDone

pytestmark = pytest.mark.timeout(120)


def _shm_left() -> list[str]:
    return [p.name for p in Path("/dev/shm").glob(f"bw_{os.getpid()}_*")]


def test_each_caller_gets_its_own_rows_across_changing_batch_layouts() -> None:
    """400 callers of 1-3 rows each, so consecutive batches differ in shape (new layouts for the
    struct messages) and two batches are always in a worker's pipe; every answer must be the
    caller's own rows doubled, in its own order."""
    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))], worker="process", replicas=2,
                       batching=bw.Batching(max_batch_size=16, max_delay_s=0.002))
    xs = [np.full((1 + i % 3, 4), i, dtype=np.float32) + np.arange(4, dtype=np.float32)
          for i in range(400)]

    async def main() -> None:
        async with node.compile() as pipeline:
            outs = await asyncio.wait_for(asyncio.gather(*(pipeline.ainfer({"x": x}) for x in xs)), 60)
            stats = pipeline.stats()["stages"]["scale"]
            assert stats["restarts"] == 0 and stats["errors"] == {}, stats
            assert stats["mean_batch_size"] > 1  # batches really were merged
        for x, out in zip(xs, outs):
            np.testing.assert_array_equal(out["y"], x * 2)

    asyncio.run(main())
    assert not _shm_left()


def test_struct_and_pickled_messages_interleave_in_order_on_one_worker() -> None:
    """Small batches cross as structs; a batch whose answer outgrows the response arena comes
    back pickled (and the arenas replaced are forgotten by a pickled message) on the same pipe:
    with both kinds in flight, each answer lands on its own caller."""
    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))], worker="process",
                       batching=bw.Batching(max_batch_size=4, max_delay_s=0.002))
    sizes = [1, 2, 300_000, 1, 3, 700_000, 2, 1, 1_500_000, 1] * 2  # 4.8, 11 and 24 MB among small

    async def main() -> None:
        async with node.compile() as pipeline:
            xs = [np.random.default_rng(i).random((n, 4), dtype=np.float32) for i, n in enumerate(sizes)]
            outs = await asyncio.wait_for(asyncio.gather(*(pipeline.ainfer({"x": x}) for x in xs)), 60)
            stats = pipeline.stats()["stages"]["scale"]
            assert stats["copied_bytes"]["pickled"] > 0  # some answers did travel pickled
            assert stats["restarts"] == 0 and stats["errors"] == {}, stats
        for x, out in zip(xs, outs):
            np.testing.assert_array_equal(out["y"], x * 2)

    asyncio.run(main())
    assert not _shm_left()


@pytest.mark.parametrize("fn, expect, worker_copies", [
    (eb.echo, lambda x: x, False),  # a pass-through: answered with where it already lies
    (eb.scale, lambda x: x * 2, True),
    (eb.every_other, lambda x: (x * 2)[:, ::2], True),
    (eb.fortran, lambda x: x * 2, True),
], ids=["pass-through", "contiguous", "strided", "fortran"])
def test_outputs_of_every_layout_come_back_whole(fn, expect, worker_copies: bool) -> None:
    cols = 2 if fn is eb.every_other else 4
    node = bw.function(fn, name="f", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, cols))], worker="process",
                       batching=bw.Batching(max_batch_size=8, max_delay_s=0.002))
    xs = [np.random.default_rng(i).random((1 + i % 3, 4), dtype=np.float32) for i in range(24)]

    async def main() -> dict[str, int]:
        async with node.compile() as pipeline:
            outs = await asyncio.wait_for(asyncio.gather(*(pipeline.ainfer({"x": x}) for x in xs)), 60)
            for x, out in zip(xs, outs):
                np.testing.assert_array_equal(out["y"], expect(x))
            return dict(pipeline.stats()["stages"]["f"]["copied_bytes"])

    copied = asyncio.run(main())
    rows = sum(len(x) for x in xs)
    engine_out = rows * cols * 4  # the engine copies every answer out of the arenas once
    assert copied["shm_out"] == engine_out * (2 if worker_copies else 1), copied
    assert "pickled" not in copied


def _slow_node() -> bw.Node:
    return bw.function(eb.slow_scale, name="slow", batch=True, inputs=[("x", "FP32")],
                       outputs=[("y", "FP32")], worker="process",
                       batching=bw.Batching(max_batch_size=1))


@pytest.mark.parametrize("fault", ["wrong-seq", "garbage"])
def test_a_pipe_out_of_step_kills_the_worker_and_the_batch_is_retried(fault: str) -> None:
    """While the worker computes batch n, the engine reads an answer for batch n + 7 (or bytes
    that are no message): it must not hand anyone that answer; the worker is killed and
    replaced, and the caller gets its own answer from the new worker (one retry)."""

    async def main() -> None:
        async with _slow_node().compile() as pipeline:
            (replica,) = pipeline._executor.stages["slow"].replicas
            first_pid = replica.pid
            call = asyncio.ensure_future(pipeline.ainfer({"x": [4.0]}))
            for _ in range(100):
                if replica.busy():
                    break
                await asyncio.sleep(0.01)
            assert replica.busy()
            if fault == "wrong-seq":
                seq = next(iter(replica._pending))
                replica._handle(BatchDone(seq + 7, (TensorRef("y", "<f4", (1,), 0, "out"),), {}, 0.0, 4, 4))
            else:
                pipe = replica._pipe
                pipe._rbuf += frame(b"Znot a message") + b"Znot a message"
                pipe._deliver()
            out = await asyncio.wait_for(call, 30)
            assert out["y"].tolist() == [8.0]  # its own answer, computed again
            assert replica.pid != first_pid
            stats = pipeline.stats()["stages"]["slow"]
            assert stats["crashes"] == 1 and stats["retries"] == 1, stats

    asyncio.run(main())
    assert not _shm_left()


def test_the_workers_channel_reads_frames_split_anywhere_and_larger_than_a_read() -> None:
    """The worker's blocking end: frames written a few bytes at a time, and one of 3 MiB (more
    than one read), arrive whole and in order; a closed peer is EOFError."""
    r, w = os.pipe()
    chan = Channel(r)
    msgs = [b"small", b"x" * (3 << 20), {"k": [1, 2]}, b""]
    blob = b"".join(frame(p) + p for p in (encode(m) for m in msgs))

    def writer() -> None:
        at = 0
        for step in (1, 3, 7, 4096):  # odd-sized pieces first, then the rest
            os.write(w, blob[at:at + step])
            at += step
        view = memoryview(blob)[at:]
        while view:
            view = view[os.write(w, view):]
        os.close(w)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert [chan.recv() for _ in msgs] == msgs
        with pytest.raises(EOFError):
            chan.recv()
    finally:
        thread.join(10)
        os.close(r)


def test_a_replaced_arena_is_never_read_through_views_cached_before() -> None:
    """The worker caches its input views per batch layout. The same small layout comes back
    after the request arena was replaced by a larger one (a new segment, the old one forgotten):
    every small batch must be read from the arena it was written to, never through a view of
    the old one (which the cached view would keep mapped, holding the old batch's numbers)."""
    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))], worker="process",
                       batching=bw.Batching(max_batch_size=1))

    async def main() -> None:
        async with node.compile() as pipeline:
            (replica,) = pipeline._executor.stages["scale"].replicas
            before = {n for slot in replica._slots for n in slot.names()}
            value = 0.0
            for big in (300_000, 700_000, 1_500_000):  # 4.8, 11, 24 MB: each grows the arenas
                for _ in range(3):  # one at a time: the same one-row layout, new numbers each
                    value += 1
                    out = await asyncio.wait_for(pipeline.ainfer({"x": np.full((1, 4), value, np.float32)}), 30)
                    np.testing.assert_array_equal(out["y"], np.full((1, 4), 2 * value, np.float32))
                x = np.random.default_rng(int(value)).random((big, 4), dtype=np.float32)
                both = await asyncio.wait_for(asyncio.gather(  # two at once: both slots grow
                    pipeline.ainfer({"x": x}), pipeline.ainfer({"x": x + 1})), 60)
                np.testing.assert_array_equal(both[0]["y"], x * 2)
                np.testing.assert_array_equal(both[1]["y"], (x + 1) * 2)
            after = {n for slot in replica._slots for n in slot.names()}
            assert not before & after  # the request arenas really were replaced
            stats = pipeline.stats()["stages"]["scale"]
            assert stats["restarts"] == 0 and stats["errors"] == {}, stats

    asyncio.run(main())
    assert not _shm_left()
