"""The llm brick on a real (tiny, locally trained) GPT-2 directory: continuous batching gives
the same greedy text as running alone, streaming gives the same text as not, requests join a
running batch, stop strings / max_tokens / seeds / the KV budget / cancellation behave."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from tests.integration.llm_kit import generator_dir

import brickwork as bw
from brickwork.llm import LlmBrick

PROMPTS = ["## batching\nEvery stage", "## faults\nbrickwork", "## serving\n", "A brick is",
           "## graphs\nBricks snap", "## workers\nEach stage picks", "## openai\n", "The llm brick"]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return generator_dir()


def _arr(texts: list[str]) -> np.ndarray:
    return np.array(texts, dtype=object)


def test_batched_greedy_equals_alone_and_streamed_equals_whole(model_dir: Path) -> None:
    pipeline = bw.brick(LlmBrick(model_dir, max_tokens=24, max_batch_size=8)).compile()
    with pipeline:
        alone = [pipeline.infer({"prompt": _arr([p])})["text"][0] for p in PROMPTS]
        together = pipeline.infer({"prompt": _arr(PROMPTS)})
        assert together["text"].tolist() == alone
        assert all(n > 0 for n in together["completion_tokens"])
        assert all(n > 0 for n in together["prompt_tokens"])
        for prompt, want in zip(PROMPTS[:3], alone, strict=False):
            chunks = list(pipeline.stream({"prompt": _arr([prompt])}))
            assert "".join(c["text"][0] for c in chunks) == want
            assert chunks[-1]["finish_reason"][0] in ("stop", "length")
            assert len(chunks) > 1 or chunks[-1]["completion_tokens"][0] <= 1


def test_a_request_joins_the_running_batch(model_dir: Path) -> None:
    brick = LlmBrick(model_dir, max_tokens=48, max_batch_size=8)
    pipeline = bw.brick(brick).compile()

    async def main() -> None:
        async with pipeline:
            alone = [(await pipeline.ainfer({"prompt": _arr([p])}))["text"][0] for p in PROMPTS[:2]]
            brick.batcher.counts["steps"] = 0
            first = pipeline.astream({"prompt": _arr([PROMPTS[0]])}, parameters={"max_tokens": 48})
            got = [(await first.__anext__())["text"][0]]  # the first is decoding now
            second = asyncio.ensure_future(pipeline.ainfer({"prompt": _arr([PROMPTS[1]])}))
            async for chunk in first:
                got.append(chunk["text"][0])
            assert "".join(got) == alone[0]
            assert (await second)["text"][0] == alone[1]
            stats = pipeline.stats()["streams"]["llm"]
            # both decoded in shared steps: fewer forward passes than tokens generated
            tokens = stats["completion_tokens"]
            assert stats["steps"] < tokens - 1, stats

    asyncio.run(main())


def test_sampling_is_seeded_and_parameters_apply(model_dir: Path) -> None:
    pipeline = bw.brick(LlmBrick(model_dir, max_tokens=16)).compile()
    with pipeline:
        def text(**params: object) -> str:
            chunks = pipeline.stream({"prompt": _arr(["A brick is"])}, parameters=params)
            return "".join(c["text"][0] for c in chunks)

        a = text(temperature=1.0, top_p=0.9, seed=7)
        assert a == text(temperature=1.0, top_p=0.9, seed=7)
        assert {text(temperature=1.5, seed=s) for s in range(4)} != {a} or len(a) == 0
        last = list(pipeline.stream({"prompt": _arr(["A brick is"])}, parameters={"max_tokens": 3}))[-1]
        assert last["completion_tokens"][0] <= 3
        greedy = text(max_tokens=16)
        if len(greedy) > 4:  # a stop string cuts the text before it
            stop = greedy[2:4]
            assert stop not in text(max_tokens=16, stop=[stop])
        with pytest.raises(bw.InvalidInput, match="context"):
            text(max_tokens=10**6)
        with pytest.raises(bw.InvalidInput, match="unknown generation parameter"):
            text(bogus=1)
        with pytest.raises(bw.InvalidInput, match="integer"):
            text(max_tokens="many")


def test_kv_budget_refuses_with_overloaded_and_cancel_frees_the_slot(model_dir: Path) -> None:
    brick = LlmBrick(model_dir, max_tokens=200, kv_budget_tokens=260)
    pipeline = bw.brick(brick).compile()

    async def main() -> None:
        async with pipeline:
            first = pipeline.astream({"prompt": _arr(["A brick is"])}, parameters={"max_tokens": 200})
            await first.__anext__()
            assert brick.stream_stats()["active"] == 1
            with pytest.raises(bw.Overloaded, match="KV budget"):
                async for _ in pipeline.astream({"prompt": _arr(["A brick is"])},
                                                parameters={"max_tokens": 200}):
                    pass
            await first.aclose()  # the consumer hangs up
            for _ in range(200):
                stats = brick.stream_stats()
                if stats["active"] == 0:
                    break
                await asyncio.sleep(0.01)
            assert stats["active"] == 0 and stats["kv_reserved_tokens"] == 0 and stats["cancelled"] == 1
            # the slot is free again
            out = await pipeline.ainfer({"prompt": _arr(["A brick is"])})
            assert out["finish_reason"][0] in ("stop", "length")

    asyncio.run(main())


def test_yaml_llm_brick(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "gen.yaml"
    path.write_text(textwrap.dedent(f"""
        name: gen
        bricks:
          llm: {{llm: {{transformers: {model_dir}, max_tokens: 8, max_batch_size: 4}}}}
        graph: llm
    """))
    from brickwork.graph import load_pipeline

    pipeline = load_pipeline(path)
    with pipeline:
        out = pipeline.infer({"prompt": _arr(["A brick is"])})
        assert out["completion_tokens"][0] <= 8
    with pytest.raises(bw.ConfigError, match="unknown llm option"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(path.read_text().replace("max_tokens: 8", "max_tokenz: 8"))
        load_pipeline(bad)


def test_many_threads_share_the_batch(model_dir: Path) -> None:
    brick = LlmBrick(model_dir, max_tokens=16, max_batch_size=16)
    with bw.brick(brick).compile() as pipeline:
        alone = pipeline.infer({"prompt": _arr(["## tools\n"])})["text"][0]
        results: list[str] = []

        def call() -> None:
            results.append(pipeline.infer({"prompt": _arr(["## tools\n"])})["text"][0])

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [alone] * 8


def test_kv_budget_bounds_the_padded_cache_not_the_sum(model_dir: Path) -> None:
    """Every row of the padded cache is as wide as the longest: a short sequence and a long one
    whose reservations sum under the budget are still refused together when two rows of the
    long one's width are over it. The batcher is not started, so both stay admitted (waiting)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brickwork.llm._batcher import Batcher, Sampling

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    batcher = Batcher(model, AutoTokenizer.from_pretrained(model_dir), kv_budget_tokens=200)
    short = batcher.submit([5] * 10, Sampling(max_tokens=30), lambda *a: None)  # reserves 40
    assert batcher.stats()["kv_bound_tokens"] == 40
    with pytest.raises(bw.Overloaded, match=r"2 rows x 130 tokens = 260, over the budget of 200"):
        batcher.submit([5] * 10, Sampling(max_tokens=120), lambda *a: None)  # 40 + 130 <= 200, 2 x 130 > 200
    assert batcher.stats()["kv_reserved_tokens"] == 40 and batcher.stats()["refused"] == 1
    batcher.submit([5] * 10, Sampling(max_tokens=80), lambda *a: None)  # 2 x 90 <= 200: admitted
    assert batcher.stats()["kv_bound_tokens"] == 180
    batcher.cancel(short)
    assert batcher.stats()["kv_bound_tokens"] == 90 and batcher.stats()["kv_reserved_tokens"] == 90
    with pytest.raises(bw.Overloaded, match="KV budget full"):
        batcher.submit([5] * 10, Sampling(max_tokens=100), lambda *a: None)  # 2 x 110 > 200


def test_a_finished_sequence_leaves_without_waiting_for_the_others(model_dir: Path) -> None:
    brick = LlmBrick(model_dir, max_tokens=200, max_batch_size=8)
    pipeline = bw.brick(brick).compile()

    async def main() -> None:
        async with pipeline:
            # hot seeded sampling: 200 tokens of noise (end-of-text is 1 token in 512)
            long = pipeline.astream({"prompt": _arr(["A brick is"])},
                                    parameters={"max_tokens": 200, "temperature": 5.0, "seed": 3})
            await long.__anext__()  # the long one is decoding now
            short = [c async for c in pipeline.astream({"prompt": _arr(["## faults\nbrickwork"])},
                                                       parameters={"max_tokens": 4})]
            stats = brick.stream_stats()
            assert short[-1]["finish_reason"][0] in ("length", "stop")
            assert stats["active"] == 1 and stats["finished"] >= 1, stats  # the long one still decodes
            n = 0
            async for chunk in long:
                n = int(chunk["completion_tokens"][0])
            assert n > 4

    asyncio.run(main())
