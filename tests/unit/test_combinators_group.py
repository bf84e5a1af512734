"""group(): a step runs once per distinct value of a key, and equal keys of different calls
batch together (bucketing by a per-item size, as OCR recognition needs for its padded width)."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated

import numpy as np

import brickwork as bw
from brickwork.graph import dump_graph, parse_pipeline

Row = Annotated[np.ndarray, bw.Tensor("FP32", (-1,))]


def pad(width: Annotated[np.ndarray, bw.Tensor("INT64")]) -> Row:
    """Each row padded to its group's width: only valid when every row shares one width."""
    assert len(set(width.tolist())) == 1, width
    return np.ones((len(width), int(width[0])), dtype=np.float32)


def total(y: Row) -> Annotated[np.ndarray, bw.Tensor("FP32")]:
    return y.sum(axis=1)


def _graph(seen: list[tuple[int, ...]]) -> bw.Graph:
    def model(x: Row) -> Row:  # records the shapes it is called with
        seen.append(x.shape)
        return x

    inner = [bw.function(pad, batch=True, rowwise=False, outputs="x"),
             bw.function(model, batch=True, blocking=True, name="model", outputs="y",
                         batching={"max_batch_size": 64, "max_delay_s": 0.05}),
             bw.function(total, batch=True)]
    step = inner[0] >> inner[1] >> inner[2]
    return bw.graph(bw.group("width", step), inputs=[bw.TensorSpec("width", "INT64", (-1,))])


def test_group_runs_the_step_per_value_and_keeps_order():
    seen: list[tuple[int, ...]] = []
    with _graph(seen).compile() as pipe:
        seen.clear()  # the warm-up call
        out = pipe.infer({"width": np.array([3, 5, 3, 2, 5])})
    assert out["total"].tolist() == [3.0, 5.0, 3.0, 2.0, 5.0]
    assert sorted(seen) == [(1, 2), (2, 3), (2, 5)]


def test_groups_of_concurrent_calls_with_the_same_value_share_a_batch():
    # Two calls queued together: the width-4 groups of both go to the model in one call. (A
    # stage waits max_delay_s only for requests already on their way, so the calls are made on
    # the pipeline's loop in one go; calls from two threads arrive apart and may not merge.)
    seen: list[tuple[int, ...]] = []
    pipe = _graph(seen).compile()

    async def main() -> list[np.ndarray]:
        async with pipe:
            seen.clear()
            outs = await asyncio.gather(pipe.ainfer({"width": np.array([4, 4, 7])}),
                                        pipe.ainfer({"width": np.array([4, 9])}))
            return [o["total"] for o in outs]

    first, second = asyncio.run(main())
    assert first.tolist() == [4.0, 4.0, 7.0] and second.tolist() == [4.0, 9.0]
    assert (3, 4) in seen  # width 4 of both calls in one model call (2 + 1 rows)


def test_calls_from_two_threads_get_their_own_groups_back():
    seen: list[tuple[int, ...]] = []
    with _graph(seen).compile() as pipe:
        barrier = threading.Barrier(2)
        results: dict[int, np.ndarray] = {}

        def call(i: int, widths: list[int]) -> None:
            barrier.wait()
            results[i] = pipe.infer({"width": np.array(widths)})["total"]

        threads = [threading.Thread(target=call, args=(0, [4, 4, 7])),
                   threading.Thread(target=call, args=(1, [4, 9]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results[0].tolist() == [4.0, 4.0, 7.0] and results[1].tolist() == [4.0, 9.0]


def test_group_in_yaml_round_trips():
    text = """
name: g
inputs: [{name: width, datatype: INT64, shape: [-1]}]
bricks:
  pad:   {python: "test_combinators_group:pad", batch: true, rowwise: false,
          outputs: [{name: y, datatype: FP32, shape: [-1, -1]}]}
  total: {python: "test_combinators_group:total", batch: true}
graph: {group: {on: width, step: pad >> total}}
"""
    import pathlib

    here = pathlib.Path(__file__).parent
    parsed = parse_pipeline(text, base_dir=here)
    with parsed.compile() as pipe:
        assert pipe.infer({"width": [2, 6, 2]})["total"].tolist() == [2.0, 6.0, 2.0]
    assert "group" in dump_graph(parsed.graph)
    again = parse_pipeline(dump_graph(parsed.graph), base_dir=here)
    with again.compile() as pipe:
        assert pipe.infer({"width": [1, 3]})["total"].tolist() == [1.0, 3.0]
