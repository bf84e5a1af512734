"""Process workers under large messages, on uvloop (the server's loop): a batch of 10,000 texts
and FP32 tensors of 5-16 MiB cross the worker pipe whole, on every backend.

Before the fix, uvloop's ``add_reader`` made the worker pipe non-blocking and
``Connection.send``/``recv`` raised ``BlockingIOError`` half-way through any message larger
than the socket buffer; the engine took that for a dead worker and called the request poison.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import uvloop
from tests.integration import engine_bricks as eb

import brickwork as bw
from brickwork.graph import load_pipeline
from brickwork.pipeline import Pipeline

pytestmark = pytest.mark.timeout(180)

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "pipeline.yaml"
BACKENDS = ("local", "process")


def _texts(n: int) -> np.ndarray:
    words = ("I love it, great!", "terrible and awful", "an ordinary day", "best thing ever!!")
    return np.array([f"{words[i % 4]} #{i}" for i in range(n)], dtype=object)


def _shm_left() -> list[str]:
    return [p.name for p in Path("/dev/shm").glob(f"bw_{os.getpid()}_*")]


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_quickstart_answers_thousands_of_texts_in_one_request_on_every_backend(n: int) -> None:
    plan = load_pipeline(QUICKSTART).plan
    texts = _texts(n)

    async def answer(backend: str) -> dict[str, np.ndarray]:
        async with Pipeline(plan, backend=backend) as pipeline:
            first = await pipeline.ainfer({"text": texts})
            again = await pipeline.ainfer({"text": texts})  # the grown arenas are reused
            np.testing.assert_array_equal(first["probability"], again["probability"])
            if backend == "process":
                stats = pipeline.stats()["stages"]
                assert all(s["restarts"] == 0 and s["errors"] == {} for s in stats.values()), stats
            return dict(first)

    answers = {backend: uvloop.run(answer(backend)) for backend in BACKENDS}
    for backend, out in answers.items():
        assert out["probability"].shape == (n, 1) and out["decision"].shape == (n,), backend
        np.testing.assert_allclose(out["probability"], answers["local"]["probability"], rtol=1e-6)
        assert out["decision"].tolist() == answers["local"]["decision"].tolist()
    assert not _shm_left()


@pytest.mark.parametrize("mib", [5, 16])
def test_fp32_tensors_of_megabytes_round_trip_on_every_backend(mib: int) -> None:
    rows = mib * (1 << 20) // 16  # FP32[rows, 4]
    x = np.random.default_rng(mib).random((rows, 4), dtype=np.float32)

    async def answer(backend: str) -> list[np.ndarray]:
        node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                           outputs=[("y", "FP32", (-1, 4))], worker="thread")
        async with Pipeline(node.compile().plan, backend=backend) as pipeline:
            return [(await pipeline.ainfer({"x": x}))["y"] for _ in range(3)]

    for backend in BACKENDS:
        for y in uvloop.run(answer(backend)):
            np.testing.assert_array_equal(y, x * 2)
    assert not _shm_left()
