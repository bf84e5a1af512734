"""Streaming through the engine: chunk order, per-chunk bricks, refused shapes, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
import pytest

import brickwork as bw
from brickwork.spec import Signature, TensorSpec


class WordStream(bw.BaseBrick):
    """Streams the words of each prompt, one chunk per word; counts live streams."""

    kind = "words"
    streaming = True
    blocking = False

    def __init__(self, name: str = "words", *, step_s: float = 0.0) -> None:
        super().__init__(name, Signature((TensorSpec("prompt", "BYTES", (-1,)),),
                                         (TensorSpec("text", "BYTES", (-1,)),)))
        self.step_s = step_s
        self.active = 0
        self.closed = 0

    def _call(self, inputs: Any) -> Any:
        return {"text": np.array([str(p) for p in inputs["prompt"]], dtype=object)}

    async def stream(self, inputs: Any, parameters: Mapping[str, Any]) -> AsyncIterator[Any]:
        self.active += 1
        try:
            words = [str(p).split() for p in inputs["prompt"]]
            limit = int(parameters.get("max_tokens", 10**9))
            for i in range(min(max(map(len, words)), limit)):
                await asyncio.sleep(self.step_s)
                yield {"text": np.array([(w[i] + " ") if i < len(w) else "" for w in words], dtype=object)}
        finally:
            self.active -= 1
            self.closed += 1

    def stream_stats(self) -> dict[str, int]:
        return {"active": self.active}


def shout(text: str) -> str:
    return text.upper()


def prompt(question: str) -> str:
    return question.strip()


def test_stream_yields_chunks_through_per_chunk_bricks() -> None:
    words = WordStream()
    pipeline = (bw.function(prompt)
                >> bw.brick(words) >> bw.function(shout)).compile()
    with pipeline:
        chunks = [c["shout"].tolist() for c in pipeline.stream({"question": np.array([" a b c "], dtype=object)})]
        assert chunks == [["A "], ["B "], ["C "]]
        # the same pipeline without streaming answers in one go
        assert pipeline.infer({"question": np.array([" a b "], dtype=object)})["shout"].tolist() == ["A B"]
        # parameters reach the streaming brick
        short = list(pipeline.stream({"question": np.array(["a b c d"], dtype=object)}, parameters={"max_tokens": 2}))
        assert len(short) == 2
        assert pipeline.stats()["streams"]["words"] == {"active": 0}


def test_a_plain_pipeline_streams_one_chunk() -> None:
    pipeline = bw.function(shout).compile()
    with pipeline:
        assert [c["shout"].tolist() for c in pipeline.stream({"text": ["x"]})] == [["X"]]


def test_stopping_the_consumer_closes_the_stream() -> None:
    words = WordStream(step_s=0.01)
    pipeline = bw.brick(words).compile()

    async def main() -> None:
        async with pipeline:
            agen = pipeline.astream({"prompt": np.array([" ".join(["w"] * 1000)], dtype=object)})
            got = 0
            async for _ in agen:
                got += 1
                if got == 3:
                    break
            await agen.aclose()
            assert words.active == 0 and words.closed == 1
            # a consumer task cancelled mid-stream (a client that hangs up) frees it too
            async def consume() -> None:
                async for _ in pipeline.astream({"prompt": np.array(["w " * 1000], dtype=object)}):
                    pass
            task = asyncio.create_task(consume())
            while words.active == 0:
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert words.active == 0 and words.closed == 2

    asyncio.run(main())


def test_sync_stream_closed_early_frees_the_slot() -> None:
    words = WordStream(step_s=0.001)
    with bw.brick(words).compile() as pipeline:
        gen = pipeline.stream({"prompt": np.array(["a b c d e f"], dtype=object)})
        next(gen)
        gen.close()
        assert words.active == 0


@pytest.mark.parametrize("shape", ["parallel", "after", "ensemble", "two"])
def test_compile_refuses_shapes_that_cannot_stream(shape: str) -> None:
    words = WordStream()
    if shape == "parallel":
        g = bw.parallel(bw.brick(words), bw.function(shout).rename(inputs={"text": "prompt"}, outputs={"shout": "other"}))
        match = "top-level step"
    elif shape == "after":
        g = bw.brick(words) >> bw.parallel(bw.function(shout, name="a").rename(outputs={"shout": "a"}),
                                           bw.function(shout, name="b").rename(outputs={"shout": "b"}))
        match = "only plain bricks may follow"
    elif shape == "ensemble":
        g = bw.brick(words).fallback(bw.function(prompt).rename(inputs={"question": "prompt"},
                                                                outputs={"prompt": "p2"})
                                     >> bw.function(shout).rename(inputs={"text": "p2"}, outputs={"shout": "text"}))
        match = "every rung of a streaming fallback must be a single brick"
    else:
        g = bw.brick(words) >> bw.brick(WordStream("again")).rename(outputs={"text": "text2"})
        match = "more than one streaming stage"
    with pytest.raises(bw.GraphError, match=match):
        g.compile()


class Broken(WordStream):
    async def stream(self, inputs: Any, parameters: Mapping[str, Any]) -> AsyncIterator[Any]:
        raise bw.UpstreamError("upstream down", 503)
        yield {}  # pragma: no cover - makes this an async generator


def test_a_streaming_fallback_climbs_before_the_first_chunk() -> None:
    down, up = Broken("remote"), WordStream("local")
    pipeline = bw.brick(down).fallback(bw.brick(up), default={"text": "sorry"}).compile()
    with pipeline:
        chunks = list(pipeline.stream({"prompt": np.array(["a b"], dtype=object)}))
        assert [c["text"].tolist() for c in chunks] == [["a "], ["b "]]
        assert chunks[-1].rungs and chunks[-1].degraded and set(chunks[-1].rungs.values()) == {"local"}
    only_default = bw.brick(Broken("remote")).fallback(bw.brick(Broken("again")), default={"text": "sorry"})
    with only_default.compile() as pipeline:
        chunks = list(pipeline.stream({"prompt": np.array(["a b"], dtype=object)}))
        assert [c["text"].tolist() for c in chunks] == [["sorry"]]
        assert set(chunks[0].rungs.values()) == {"default"}
