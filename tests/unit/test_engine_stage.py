"""Stages in one process (inline and thread workers): batching across callers, split-back,
per-item errors, deadlines, overload, replicas and stats."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

import brickwork as bw
from brickwork.engine import LocalBackend, Stage


def picky(x: float) -> float:
    if x == 13.0:
        raise ValueError("13 is unlucky")
    return x + 1.0


def plus_row_count(x: float) -> float:
    return x


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_concurrent_callers_share_batches_and_get_their_own_rows_back() -> None:
    node = bw.function(lambda x: x * 10, name="times10", batch=True, inputs=[("x", "FP32", (-1, 2))],
                       outputs=[("y", "FP32", (-1, 2))], blocking=True,
                       batching=bw.Batching(max_batch_size=64, max_delay_s=0.05))
    pipeline = node.compile()

    async def main() -> None:
        async with pipeline:
            xs = [np.full((1 + i % 3, 2), i, dtype=np.float32) for i in range(30)]
            outs = await asyncio.gather(*(pipeline.ainfer({"x": x}) for x in xs))
            for x, out in zip(xs, outs):
                np.testing.assert_array_equal(out["y"], x * 10)
            st = pipeline.stats()["stages"]["times10"]
            assert st["requests"] == 30 and st["items"] == sum(len(x) for x in xs)
            assert st["batches"] < 30, st["batch_sizes"]  # requests really were merged
            assert st["copied_bytes"]["merge"] > 0

    run(main())


def test_one_bad_item_fails_only_its_own_request() -> None:
    node = bw.function(picky, blocking=True, batching=bw.Batching(max_batch_size=32, max_delay_s=0.05))
    pipeline = node.compile()

    async def main() -> None:
        async with pipeline:
            values = [float(v) for v in range(10, 20)]
            outs = await asyncio.gather(*(pipeline.ainfer({"x": [v]}) for v in values),
                                        return_exceptions=True)
            for v, out in zip(values, outs):
                if v == 13.0:
                    assert isinstance(out, bw.ModelError) and "unlucky" in str(out)
                else:
                    assert not isinstance(out, BaseException), out
                    assert out["picky"].tolist() == [v + 1]
            st = pipeline.stats()["stages"]["picky"]
            assert st["errors"] == {"ModelError": 1}
            assert st["retries"] >= 2  # the merged batch was re-run one by one

    run(main())


def test_deadline_expires_in_the_queue_before_compute() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def slow(x: float) -> float:
        calls.append(1)
        gate.wait(5)
        return x

    node = bw.function(slow, blocking=True, batching=bw.Batching(max_batch_size=1))
    pipeline = node.compile()

    async def main() -> None:
        async with pipeline:
            calls.clear()
            first = asyncio.ensure_future(pipeline.ainfer({"x": [1.0]}))
            await asyncio.sleep(0.05)  # the first holds the only replica
            with pytest.raises(bw.DeadlineExceeded):
                await pipeline.ainfer({"x": [2.0]}, timeout_s=0.05)
            gate.set()
            assert (await first)["slow"].tolist() == [1.0]
            await asyncio.sleep(0.05)
            assert len(calls) == 1  # the expired request never reached the brick

    run(main())


def test_full_queue_answers_overloaded() -> None:
    gate = threading.Event()

    def stuck(x: float) -> float:
        gate.wait(5)
        return x

    node = bw.function(stuck, blocking=True, batching=bw.Batching(max_batch_size=1, max_queue_size=2))
    pipeline = node.compile()

    async def main() -> None:
        async with pipeline:
            tasks = [asyncio.ensure_future(pipeline.ainfer({"x": [float(i)]})) for i in range(6)]
            await asyncio.sleep(0.05)
            gate.set()
            outs = await asyncio.gather(*tasks, return_exceptions=True)
            over = [o for o in outs if isinstance(o, bw.Overloaded)]
            # one running, one full batch waiting in the replica's thread, two queued: two refused
            assert len(over) == 2
            assert all(o.retry_after_s > 0 for o in over)

    run(main())


def test_thread_replicas_share_the_load() -> None:
    def nap(x: float) -> float:
        time.sleep(0.05)
        return x

    node = bw.function(nap, blocking=True, replicas=2)
    pipeline = node.compile()

    async def main() -> None:
        async with pipeline:
            await asyncio.gather(*(pipeline.ainfer({"x": [float(i)]}) for i in range(6)))
            info = pipeline.stats()["stages"]["nap"]["replica_info"]
            assert [r["batches"] > 0 for r in info] == [True, True]

    run(main())


def test_stats_name_the_slow_stage_as_bottleneck() -> None:
    def quick(x: float) -> float:
        return x

    def sluggish(quick: float) -> float:
        time.sleep(0.01)
        return quick

    pipeline = (bw.function(quick) >> bw.function(sluggish, blocking=True)).compile()

    async def main() -> None:
        async with pipeline:
            await asyncio.gather(*(pipeline.ainfer({"x": [1.0]}) for _ in range(10)))
            stats = pipeline.stats()
            assert stats["bottleneck"] == "sluggish"
            s = stats["stages"]["sluggish"]
            assert s["compute_s"]["p50"] >= 0.009
            assert s["utilisation"] > stats["stages"]["quick"]["utilisation"]

    run(main())


def test_non_rowwise_brick_gets_each_request_alone() -> None:
    def explode(x: np.ndarray) -> np.ndarray:  # one row in, x[0] rows out
        return np.arange(int(x[0]), dtype=np.int64)

    node = bw.function(explode, batch=True, rowwise=False, blocking=True, inputs=[("x", "INT64")],
                       outputs=[("y", "INT64")], batching=bw.Batching(max_batch_size=8, max_delay_s=0.02))
    pipeline = node.compile()

    async def main() -> None:
        async with pipeline:
            outs = await asyncio.gather(*(pipeline.ainfer({"x": [n]}) for n in (2, 3, 4)))
            assert [o["y"].tolist() for o in outs] == [[0, 1], [0, 1, 2], [0, 1, 2, 3]]

    run(main())


def test_latency_target_mode_learns_and_grows_batches() -> None:
    def per_batch(x: np.ndarray) -> np.ndarray:
        time.sleep(0.002 + 0.0001 * len(x))
        return x

    node = bw.function(per_batch, batch=True, blocking=True, inputs=[("x", "FP32")], outputs=[("y", "FP32")],
                       batching=bw.Batching(max_batch_size=64, target_latency_s=0.05))
    pipeline = node.compile()

    async def main() -> None:
        async with pipeline:
            for _ in range(3):
                await asyncio.gather(*(pipeline.ainfer({"x": [1.0]}) for _ in range(40)))
            st = pipeline.stats()["stages"]["per_batch"]
            assert st["latency_limit"] > 1
            assert max(st["batch_sizes"]) > 1

    run(main())


def test_stage_runner_protocol_directly() -> None:
    """The executor's view: submit() one request, stats(), live_replicas()."""
    node = bw.function(picky)
    plan = bw.graph(node).compile().plan if hasattr(bw.graph(node), "compile") else node.compile().plan

    async def main() -> None:
        backend = LocalBackend()
        stages = await backend.start(plan)
        stage = stages["picky"]
        assert isinstance(stage, Stage)
        out = await stage.submit({"x": np.array([1.0, 2.0])}, None)
        assert out["picky"].tolist() == [2.0, 3.0]
        with pytest.raises(bw.DeadlineExceeded):
            await stage.submit({"x": np.array([1.0])}, time.monotonic() - 1)
        assert stage.live_replicas() == 1
        await backend.stop()

    run(main())


def test_thread_replicas_merge_small_batches_on_the_loop_and_big_ones_on_the_worker(monkeypatch) -> None:
    """A small batch is concatenated on the event loop (numpy's copy gives the GIL up, and a
    worker thread then waits for the busy loop to get it back); a big one on the worker, so the
    loop is not stalled by the copy. Either way the callers get their own rows back."""
    from brickwork.engine import _replicas

    merged_on: list[str] = []
    real_merge = _replicas.merge

    def spy(parts):  # type: ignore[no-untyped-def]
        merged_on.append(threading.current_thread().name)
        return real_merge(parts)

    monkeypatch.setattr(_replicas, "merge", spy)

    def double(x: np.ndarray) -> np.ndarray:
        return x * 2

    for width, where in ((8, "MainThread"), (1 << 17, "bw-")):  # 8 floats; 1 MiB a request
        merged_on.clear()
        node = bw.function(double, name="double", batch=True, inputs=[("x", "FP64", (-1, width))],
                           outputs=[("y", "FP64", (-1, width))], blocking=True,
                           batching=bw.Batching(max_batch_size=4, max_delay_s=0.05))

        async def main(node: bw.Node, width: int) -> list[np.ndarray]:
            async with node.compile() as pipeline:
                outs = await asyncio.gather(*(pipeline.ainfer({"x": np.full((1, width), float(i))})
                                              for i in range(4)))
                return [o["y"] for o in outs]

        ys = run(main(node, width))
        assert [float(y[0, 0]) for y in ys] == [0.0, 2.0, 4.0, 6.0]  # type: ignore[union-attr]
        assert merged_on and all(name.startswith(where) for name in merged_on), (width, merged_on)


def _chain(blocking: bool, batching: bw.Batching, n: int = 4) -> bw.Pipeline:
    """n batched stages in a row, x -> a1 -> a2 -> ... each adding 1."""
    names = ["x"] + [f"a{i}" for i in range(1, n + 1)]
    nodes = []
    for i in range(n):
        def step(**port: np.ndarray) -> np.ndarray:
            (v,) = port.values()
            return v + 1.0
        nodes.append(bw.function(step, name=f"s{i}", batch=True, blocking=blocking,
                                 inputs=[(names[i], "FP32", (-1, 2))],
                                 outputs=[(names[i + 1], "FP32", (-1, 2))], batching=batching))
    graph = nodes[0]
    for node in nodes[1:]:
        graph = graph >> node
    return graph.compile()


@pytest.mark.parametrize("blocking", [False, True], ids=["inline", "thread"])
def test_one_caller_pays_no_batching_delay_through_a_chain_of_batched_stages(blocking: bool) -> None:
    # Each stage may wait 0.5 s for company; a lone caller has none on its way, so no stage
    # waits (it used to: 4 x 0.5 s a request).
    pipeline = _chain(blocking, bw.Batching(max_batch_size=32, max_delay_s=0.5))

    async def main() -> None:
        async with pipeline:
            t0 = time.perf_counter()
            for i in range(3):
                out = await pipeline.ainfer({"x": np.full((1, 2), i, np.float32)})
                assert out["a4"].tolist() == [[i + 4.0, i + 4.0]]
            assert time.perf_counter() - t0 < 1.5  # 6 s if any stage waited out its delay
            for st in pipeline.stats()["stages"].values():
                assert st["queue_s"]["p99"] < 0.25, st["queue_s"]

    run(main())


def test_requests_on_their_way_still_fill_the_next_stage_batch() -> None:
    # 16 callers at once: the first stage runs them in batches as they come, and the second
    # stage waits for the rest of its company (they are on their way) instead of running the
    # first arrivals alone.
    first = threading.Event()

    def gate(x: np.ndarray) -> np.ndarray:
        first.wait(5.0)
        return x

    def tail(g: np.ndarray) -> np.ndarray:
        return g * 2.0

    a = bw.function(gate, name="gate", batch=True, blocking=True, inputs=[("x", "FP32", (-1, 2))],
                    outputs=[("g", "FP32", (-1, 2))], batching=bw.Batching(max_batch_size=4))
    b = bw.function(tail, name="tail", batch=True, inputs=[("g", "FP32", (-1, 2))],
                    outputs=[("y", "FP32", (-1, 2))],
                    batching=bw.Batching(max_batch_size=16, max_delay_s=5.0))
    pipeline = (a >> b).compile()

    async def main() -> None:
        async with pipeline:
            calls = [pipeline.ainfer({"x": np.full((1, 2), i, np.float32)}) for i in range(16)]
            tasks = [asyncio.ensure_future(c) for c in calls]
            await asyncio.sleep(0.05)
            first.set()
            outs = await asyncio.gather(*tasks)
            for i, out in enumerate(outs):
                assert out["y"].tolist() == [[2.0 * i, 2.0 * i]]
            st = pipeline.stats()["stages"]
            assert max(st["gate"]["batch_sizes"]) <= 4
            # the first gate batch did not leave alone: the tail waited for the others
            assert st["tail"]["batch_sizes"] == {16: 1}, st["tail"]["batch_sizes"]

    run(main())


def test_a_branch_a_request_did_not_take_does_not_wait_for_it() -> None:
    # A request routed to one branch is on its way to the other branch's stage only until it
    # leaves; the next request routed there must not wait out max_delay_s for it.
    batching = bw.Batching(max_batch_size=32, max_delay_s=0.5)

    def kind(text: str) -> str:
        return "a" if text.startswith("a") else "b"

    def left(text: str) -> str:
        return "A " + text

    def right(text: str) -> str:
        return "B " + text

    graph = bw.function(kind, outputs="kind") >> bw.switch("kind", {
        "a": bw.function(left, outputs="reply", batching=batching),
        "b": bw.function(right, outputs="reply", batching=batching)})
    pipeline = graph.compile()

    async def main() -> None:
        async with pipeline:
            t0 = time.perf_counter()
            for text in ("apple", "banana", "avocado", "blueberry"):
                out = await pipeline.ainfer({"text": [text]})
                assert out["reply"].tolist() == [("A " if text[0] == "a" else "B ") + text]
            assert time.perf_counter() - t0 < 1.0  # 2 s if a branch waited for the other's request

    run(main())


def test_the_one_call_hot_path_answers_as_ainfer_and_only_where_it_applies() -> None:
    """``Executor.start``/``finish`` (the server's path for a one-call plan without a deadline)
    give what ``ainfer`` gives, batched with other callers; a guarded stage, a two-stage plan
    or zero items take ``run``."""
    node = bw.function(lambda x: x * 10, name="times10", batch=True, inputs=[("x", "FP32", (-1, 2))],
                       outputs=[("y", "FP32", (-1, 2))], blocking=False,
                       batching=bw.Batching(max_batch_size=64, max_delay_s=0.01))
    guarded = bw.function(lambda x: x * 10, name="g", batch=True, inputs=[("x", "FP32", (-1, 2))],
                          outputs=[("y", "FP32", (-1, 2))], retries=1)
    two = node >> bw.function(lambda y: y + 1, name="plus1", batch=True, inputs=[("y", "FP32", (-1, 2))],
                              outputs=[("z", "FP32", (-1, 2))], blocking=False)

    async def main() -> None:
        pipeline = node.compile()
        async with pipeline:
            ex = pipeline.local_executor()
            assert ex is not None
            xs = [np.full((1 + i % 3, 2), i, dtype=np.float32) for i in range(12)]
            started = [ex.start(ex.validate({"x": x})) for x in xs]
            assert all(isinstance(s, asyncio.Future) for s in started)
            outs = [ex.finish(await s) for s in started]  # type: ignore[misc]
            for x, out in zip(xs, outs, strict=True):
                assert np.array_equal(out["y"], x * 10) and out.rungs == {} and not out.degraded
            assert pipeline.stats()["stages"]["times10"]["batches"] == 1
            assert ex.start({"x": np.zeros((0, 2), np.float32)}) is None  # zero items: run()
        for other in (guarded.compile(), two.compile()):
            async with other:
                ex = other.local_executor()
                assert ex is not None and ex.start({"x": np.ones((1, 2), np.float32)}) is None
        async with guarded.compile() as g:
            assert type(g.local_executor().stages["g"]).__name__ == "GuardedStage"  # type: ignore[union-attr]

    run(main())
