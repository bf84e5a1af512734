"""Generation benchmarks (issue 15), measured in one run on the RAG example's tiny GPT-2
(``python -m examples.rag.build`` trains it once):

* continuous batching: 16 concurrent streams vs one stream alone (tokens/s, time to first token
  p50/p99), and the transformers ``pipeline("text-generation")`` called per request on the same
  prompts (the seed's "way 3");
* the OpenAI front's overhead per request: /v1/chat/completions through the real HTTP server
  vs ``await pipeline.ainfer`` in Python, on a trivial text pipeline (sequential requests).

    .venv/bin/python bench/llm.py [--streams 16] [--tokens 64] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import brickwork as bw
from brickwork.llm import LlmBrick

PROMPTS = ["## batching\nEvery stage", "## faults\nbrickwork", "## serving\nbrickwork serve", "A brick is",
           "## graphs\nBricks snap", "## workers\nEach stage", "## openai\nbrickwork serve", "The llm brick",
           "## tools\nEvery served", "## optimize\nbrickwork", "## federated\nbrickwork fed",
           "## streaming\nA streaming", "## generation\nThe llm", "## bricks\nA brick", "Requests that",
           "A full queue"]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def _streams(pipeline: bw.Pipeline, prompts: list[str], tokens: int) -> dict[str, float]:
    ttft: list[float] = []
    counts: list[int] = []

    async def one(prompt: str) -> None:
        t0 = time.perf_counter()
        first = None
        n = 0
        # temperature sampling with a seed keeps every stream generating to max_tokens (greedy
        # text on this tiny model often ends early at end-of-text), so both sides do equal work
        async for chunk in pipeline.astream({"prompt": np.array([prompt], dtype=object)},
                                            parameters={"max_tokens": tokens, "temperature": 0.8, "seed": 1}):
            if first is None and chunk["text"][0]:
                first = time.perf_counter() - t0
            n = int(chunk["completion_tokens"][0])
        ttft.append(first or 0.0)
        counts.append(n)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - t0
    return {"streams": len(prompts), "tokens": sum(counts), "wall_s": wall, "tokens_per_s": sum(counts) / wall,
            "ttft_p50_ms": 1000 * _pct(ttft, 0.5), "ttft_p99_ms": 1000 * _pct(ttft, 0.99)}


def batching(model: Path, streams: int, tokens: int, threads: int) -> dict[str, object]:
    brick = LlmBrick(model, max_batch_size=streams, max_tokens=tokens, torch_threads=threads)
    pipeline = bw.brick(brick).compile(name="gen")

    async def main() -> dict[str, object]:
        async with pipeline:
            await _streams(pipeline, PROMPTS[:2], 8)  # warm
            alone = [await _streams(pipeline, [p], tokens) for p in PROMPTS[:3]]
            alone_tps = statistics.median(a["tokens_per_s"] for a in alone)
            together = await _streams(pipeline, (PROMPTS * 4)[:streams], tokens)
            return {"alone": alone[0] | {"tokens_per_s": alone_tps,
                                         "ttft_p50_ms": statistics.median(a["ttft_p50_ms"] for a in alone)},
                    "together": together, "speedup": together["tokens_per_s"] / alone_tps}

    return asyncio.run(main())


def hf_pipeline(model: Path, streams: int, tokens: int, threads: int) -> dict[str, float]:
    import torch
    from transformers import pipeline

    torch.set_num_threads(threads)
    gen = pipeline("text-generation", model=str(model), device="cpu")
    gen("warm", max_new_tokens=4, do_sample=False)
    total, t0, ttft = 0, time.perf_counter(), []
    for prompt in (PROMPTS * 4)[:streams]:
        t = time.perf_counter()
        torch.manual_seed(1)
        out = gen(prompt, max_new_tokens=tokens, do_sample=True, temperature=0.8, return_full_text=False)
        ttft.append(time.perf_counter() - t)  # no streaming: the first token comes with the last
        total += len(gen.tokenizer.encode(out[0]["generated_text"]))
    wall = time.perf_counter() - t0
    return {"requests": streams, "tokens": total, "wall_s": wall, "tokens_per_s": total / wall,
            "ttft_p50_ms": 1000 * _pct(ttft, 0.5), "ttft_p99_ms": 1000 * _pct(ttft, 0.99)}


def front_overhead(n: int) -> dict[str, float]:
    import httpx

    from brickwork.server import serve_in_thread

    def shout(text: str) -> str:
        return text.upper()

    pipeline = bw.function(shout).compile(name="shout")
    with serve_in_thread([pipeline]) as server:
        async def python_side() -> list[float]:
            loop = pipeline._loop
            assert loop is not None
            times = []
            for _ in range(n):
                t = time.perf_counter()
                asyncio.run_coroutine_threadsafe(pipeline.ainfer({"text": np.array(["hi"], dtype=object)}),
                                                 loop).result()
                times.append(time.perf_counter() - t)
            return times

        direct = asyncio.run(python_side())
        body = {"model": "shout", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client() as http:
            for _ in range(20):
                http.post(f"{server.url}/v1/chat/completions", json=body)
            front = []
            for _ in range(n):
                t = time.perf_counter()
                r = http.post(f"{server.url}/v1/chat/completions", json=body)
                front.append(time.perf_counter() - t)
                assert r.status_code == 200
            v2 = []
            v2_body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}
            for _ in range(n):
                t = time.perf_counter()
                http.post(f"{server.url}/v2/models/shout/infer", json=v2_body)
                v2.append(time.perf_counter() - t)
    med = statistics.median
    return {"requests": n, "python_ainfer_p50_us": 1e6 * med(direct), "openai_http_p50_us": 1e6 * med(front),
            "v2_http_p50_us": 1e6 * med(v2), "openai_overhead_p50_us": 1e6 * (med(front) - med(direct)),
            "openai_vs_v2_p50_us": 1e6 * (med(front) - med(v2))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=300, help="front overhead: sequential requests")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, both sides (on 2 shared cores 2 threads run ~10x slower)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from examples.rag.build import build_generator

    model = build_generator()
    result = {"batching": batching(model, args.streams, args.tokens, args.threads),
              "hf_pipeline_per_request": hf_pipeline(model, args.streams, args.tokens, args.threads),
              "front": front_overhead(args.requests)}
    b, hf = result["batching"], result["hf_pipeline_per_request"]
    result["vs_hf_pipeline"] = b["together"]["tokens_per_s"] / hf["tokens_per_s"]  # type: ignore[index]
    print(json.dumps(result, indent=1, default=float))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
