"""Zero items is a valid batch: every combinator answers an empty request with empty outputs of
the right datatypes and shapes, on every backend, without calling a brick on 0 rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

import brickwork as bw
from brickwork.graph import load_pipeline
from brickwork.pipeline import Pipeline

pytestmark = pytest.mark.timeout(120)

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "pipeline.yaml"


def _infer(plan, inputs, backend: str = "local"):
    async def main():
        async with Pipeline(plan, backend=backend) as pipeline:
            return await pipeline.ainfer(inputs)

    return asyncio.run(main())


@pytest.mark.parametrize("backend", ["local", "process"])
def test_quickstart_answers_zero_texts_with_empty_outputs(backend: str) -> None:
    out = _infer(load_pipeline(QUICKSTART).plan, {"text": np.array([], dtype=object)}, backend)
    assert out["probability"].shape == (0, 1) and out["probability"].dtype == np.float32
    assert out["decision"].shape == (0,) and out["decision"].dtype == object


def _double(x: float) -> float:
    return 2 * x


def _negate(x: float) -> float:
    return -x


def _label(x: float) -> str:
    return "big" if x > 1 else "small"


def test_switch_ensemble_fallback_and_group_answer_zero_items() -> None:
    calls: list[int] = []

    def pick(x: float) -> str:
        calls.append(1)
        return "a" if x > 0 else "b"

    route = bw.function(pick, name="pick", outputs="key") >> bw.switch(
        "key", {"a": bw.function(_double, name="double", outputs="y"),
                "b": bw.function(_negate, name="negate", outputs="y")})
    with route.compile() as pipeline:
        calls.clear()  # the warm-up call
        out = pipeline.infer({"x": np.zeros(0, np.float64)})
    assert out["y"].shape == (0,) and out["y"].dtype == np.float64  # a Python float is FP64
    assert calls == []  # no brick was called on zero rows

    vote = bw.ensemble([bw.function(_label, name=f"m{i}", outputs="label") for i in range(3)])
    out = vote.compile().infer({"x": np.zeros(0, np.float32)})
    assert all(v.shape[0] == 0 for v in out.values()), {k: v.shape for k, v in out.items()}

    ladder = bw.function(_double, name="main", outputs="y").fallback(default={"y": 0.0})
    out = ladder.compile().infer({"x": np.zeros(0, np.float32)})
    assert out["y"].shape == (0,)

    grouped = bw.function(pick, name="pick", outputs="key") >> bw.group(
        "key", bw.function(_double, name="double", outputs="y"))
    out = grouped.compile().infer({"x": np.zeros(0, np.float32)})
    assert out["y"].shape == (0,)
