"""Worker processes fed through shared memory: same answers as in-process, crash recovery,
nothing left in /dev/shm."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from tests.integration import engine_bricks as eb

import brickwork as bw
from brickwork.graph import compile_plan
from brickwork.pipeline import Pipeline

pytestmark = pytest.mark.timeout(120)

SHM = Path("/dev/shm")


def ours() -> set[str]:
    """Segments this test process created (the arenas are named after the parent's pid)."""
    return {p.name for p in SHM.glob(f"bw_{os.getpid()}_*")}


def chain() -> bw.Graph:
    batching = bw.Batching(max_batch_size=16, max_delay_s=0.01)
    scale = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                        outputs=[("y", "FP32", (-1, 4))], batching=batching, replicas=2)
    total = bw.function(eb.total, name="total", batch=True, inputs=[("y", "FP32", (-1, 4))],
                        outputs=[("sum", "FP32", (-1, 1))], batching=batching)
    return bw.graph(scale >> total, name="chain")


def test_process_backend_answers_exactly_like_in_process() -> None:
    plan = compile_plan(chain())
    xs = [np.random.default_rng(i).random((1 + i % 4, 4), dtype=np.float32) for i in range(40)]

    async def answers(backend: str) -> list[np.ndarray]:
        async with Pipeline(plan, backend=backend) as pipeline:
            outs = await asyncio.gather(*(pipeline.ainfer({"x": x}) for x in xs))
            if backend == "process":
                stats = pipeline.stats()["stages"]
                assert [r["kind"] for r in stats["scale"]["replica_info"]] == ["process", "process"]
                assert stats["scale"]["copied_bytes"]["shm_in"] > 0
                assert "pickled" not in stats["scale"]["copied_bytes"]
            return [o["sum"] for o in outs]

    local = asyncio.run(answers("local"))
    remote = asyncio.run(answers("process"))
    for a, b in zip(local, remote):
        np.testing.assert_array_equal(a, b)
    assert not ours()


def test_bytes_tensors_cross_to_a_worker_and_back() -> None:
    node = bw.function(eb.shout, name="shout", worker="process",
                       batching=bw.Batching(max_batch_size=8, max_delay_s=0.01))

    async def main() -> None:
        async with node.compile() as pipeline:
            outs = await asyncio.gather(*(pipeline.ainfer({"text": [w, w * 2]}) for w in ("a", "bé", "c")))
            assert [o["shout"].tolist() for o in outs] == [["A!", "AA!"], ["BÉ!", "BÉBÉ!"], ["C!", "CC!"]]
            assert pipeline.stats()["stages"]["shout"]["copied_bytes"]["pickled"] > 0

    asyncio.run(main())
    assert not ours()


def test_big_tensor_grows_the_arenas_and_round_trips() -> None:
    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))], worker="process")
    big = np.random.default_rng(0).random((500_000, 4), dtype=np.float32)  # 8 MB > the 4 MB default arena

    async def main() -> None:
        async with node.compile() as pipeline:
            for _ in range(2):
                out = await pipeline.ainfer({"x": big})
                np.testing.assert_array_equal(out["y"], big * 2)
            info = pipeline.stats()["stages"]["scale"]["replica_info"][0]
            assert info["arena_bytes"]["in"] >= big.nbytes and info["arena_bytes"]["out"] >= big.nbytes

    asyncio.run(main())
    assert not ours()


def test_device_reaches_the_brick_in_its_worker() -> None:
    node = bw.brick(eb.DeviceBrick(), worker="process", device="cuda:1")

    async def main() -> None:
        async with node.compile() as pipeline:
            out = await pipeline.ainfer({"x": np.zeros(2, np.float32)})
            assert out["device"].tolist() == ["cuda:1", "cuda:1"]
            assert int(out["pid"][0]) != os.getpid()

    asyncio.run(main())


def test_sigkilled_worker_mid_batch_is_replaced_and_no_request_hangs() -> None:
    node = bw.function(eb.slow_scale, name="slow", batch=True, inputs=[("x", "FP32")],
                       outputs=[("y", "FP32")], worker="process", replicas=2,
                       batching=bw.Batching(max_batch_size=4, max_delay_s=0.01))

    async def main() -> None:
        async with node.compile() as pipeline:
            before = {r["pid"] for r in pipeline.stats()["stages"]["slow"]["replica_info"]}
            tasks = [asyncio.ensure_future(pipeline.ainfer({"x": [float(i)]})) for i in range(8)]
            await asyncio.sleep(0.1)  # both workers hold a batch now
            victim = pipeline.stats()["stages"]["slow"]["replica_info"][0]["pid"]
            os.kill(victim, signal.SIGKILL)
            outs = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
            for i, out in enumerate(outs):  # retried on a live worker, or failed as a crash
                if isinstance(out, BaseException):
                    assert isinstance(out, bw.WorkerCrashed), out
                else:
                    assert out["y"].tolist() == [2.0 * i]
            assert sum(not isinstance(o, BaseException) for o in outs) >= 4
            for _ in range(200):  # the replacement is spawning
                info = pipeline.stats()["stages"]["slow"]["replica_info"]
                if all(r["alive"] for r in info):
                    break
                await asyncio.sleep(0.05)
            after = {r["pid"] for r in info}
            assert victim not in after and len(after - before) == 1
            assert info[0]["restarts"] == 1
            out = await pipeline.ainfer({"x": [21.0]})  # the new worker serves
            assert out["y"].tolist() == [42.0]
            assert pipeline.stats()["stages"]["slow"]["crashes"] >= 1
        assert not ours()  # the killed worker's arenas went with the parent's shutdown

    asyncio.run(main())


def test_poison_request_fails_alone_and_its_batch_mates_succeed() -> None:
    node = bw.function(eb.crash_on_13, name="fragile", batch=True, inputs=[("x", "FP32")],
                       outputs=[("y", "FP32")], worker="process",
                       batching=bw.Batching(max_batch_size=8, max_delay_s=0.05))

    async def main() -> None:
        async with node.compile() as pipeline:
            values = [10.0, 11.0, 12.0, 13.0, 14.0]
            outs = await asyncio.wait_for(asyncio.gather(
                *(pipeline.ainfer({"x": [v]}) for v in values), return_exceptions=True), 60)
            for v, out in zip(values, outs):
                if v == 13.0:
                    assert isinstance(out, bw.WorkerCrashed) and "died" in str(out)
                else:
                    assert not isinstance(out, BaseException), out
                    assert out["y"].tolist() == [2 * v]

    asyncio.run(main())
    assert not ours()


def test_a_batch_queued_behind_a_crash_is_requeued_without_counting_an_attempt() -> None:
    """A worker holds two batches; [13.0] kills it while [5.0] waits in its pipe. The waiting
    batch never ran: it is requeued as it was (no retry counted) and answers on the new worker;
    13.0 is retried once alone, kills the new worker too, and fails as a poison request."""
    node = bw.function(eb.crash_on_13, name="fragile", batch=True, inputs=[("x", "FP32")],
                       outputs=[("y", "FP32")], worker="process", batching=bw.Batching(max_batch_size=1))

    async def main() -> None:
        async with node.compile() as pipeline:
            poison, fine = await asyncio.wait_for(asyncio.gather(
                pipeline.ainfer({"x": [13.0]}), pipeline.ainfer({"x": [5.0]}), return_exceptions=True), 60)
            assert isinstance(poison, bw.WorkerCrashed), poison
            assert not isinstance(fine, BaseException), fine
            assert fine["y"].tolist() == [10.0]
            stats = pipeline.stats()["stages"]["fragile"]
            assert stats["crashes"] == 2  # 13.0 with its neighbour queued, then 13.0 alone
            assert stats["retries"] == 1  # only 13.0's retry: 5.0 never ran, so it was not retried

    asyncio.run(main())
    assert not ours()


def test_a_brick_without_a_spec_is_refused_for_process_workers() -> None:
    node = bw.function(lambda x: x, name="anon", inputs=[("x", "FP32")], outputs=[("y", "FP32")],
                       batch=True, worker="process")
    pipeline = node.compile()
    with pytest.raises(bw.ConfigError, match="worker='thread'"):
        pipeline.infer({"x": [1.0]})
    pipeline.close()
    assert not ours()


def test_shutdown_stops_every_worker_by_pid() -> None:
    node = bw.function(eb.pid, name="pid", batch=True, inputs=[("x", "FP32")], outputs=[("pid", "INT64", (-1, 1))],
                       worker="process", replicas=2)
    pipeline = node.compile()
    pipeline.infer({"x": [1.0]})
    pids = [r["pid"] for r in pipeline.stats()["stages"]["pid"]["replica_info"]]
    pipeline.close()
    deadline = time.monotonic() + 10
    for p in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(p, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"worker {p} still alive after close()")
    assert not ours()


def test_a_worker_keeps_at_most_four_arena_maps_dropping_the_least_recently_used() -> None:
    """Two slots = four arenas mapped; a grown arena replaces one, and the stale map goes."""
    from brickwork.engine._shm import Arena
    from brickwork.engine._worker import _Arenas

    arenas = [Arena(4096, f"t{i}") for i in range(5)]
    try:
        maps = _Arenas(limit=4)
        names = [a.name for a in arenas]
        for i in range(0, 4, 2):  # slot 0 (in, out), then slot 1 (in, out)
            maps.get(names[i], (names[i], names[i + 1]))
            maps.get(names[i + 1], (names[i], names[i + 1]))
        for n in names[:2]:  # slot 0 again (a batch maps both its arenas): now the most recent
            maps.get(n, (names[0], names[1]))
        assert list(maps._maps) == [names[2], names[3], names[0], names[1]]
        maps.get(names[4], (names[4], names[3]))  # slot 1's request arena grew into names[4]
        assert list(maps._maps) == [names[3], names[0], names[1], names[4]]  # names[2] dropped
    finally:
        for a in arenas:
            a.release()
    assert not ours()


def test_a_cast_brick_runs_in_a_worker_process_rebuilt_from_its_recipe() -> None:
    """bw.cast learns its input spec at compile; a worker process rebuilds it from spec()."""
    graph = (bw.function(eb.wide, outputs="y") >> bw.cast({"y": "FP32"}, worker="process")
             >> bw.function(eb.narrow))
    with graph.compile() as pipeline:
        assert pipeline.plan.stages["cast_y"].worker == "process"
        assert pipeline.infer({"x": [1.5, 2.0]})["narrow"].tolist() == [3.0, 4.0]
        with pytest.raises(bw.InvalidInput, match="FP32 cannot hold"):
            pipeline.infer({"x": [1e300]})
        assert pipeline.infer({"x": [0.5]})["narrow"].tolist() == [1.0]  # the worker survived
