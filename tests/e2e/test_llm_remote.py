"""The remote LLM brick against a second ``brickwork serve`` acting as the upstream (a real
subprocess): streamed and whole answers through it, then the upstream stopped and the fallback
ladder (remote -> local -> default) answering, labelled by rung."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import openai
import pytest
from tests.e2e.serve_helpers import served, stop
from tests.integration.llm_kit import generator_dir

import brickwork as bw
from brickwork.graph import load_pipeline
from brickwork.llm import OpenAIBrick
from brickwork.server import serve_in_thread


def _arr(text: str) -> np.ndarray:
    return np.array([text], dtype=object)


def test_remote_llm_streams_then_falls_back_when_the_upstream_dies(tmp_path: Path) -> None:
    model = generator_dir()
    (tmp_path / "gen.yaml").write_text(textwrap.dedent(f"""
        name: gen
        bricks:
          llm: {{llm: {{transformers: {model}, max_tokens: 16}}}}
        graph: llm
    """))
    with served([tmp_path / "gen.yaml"], cwd=tmp_path) as upstream:
        direct = openai.OpenAI(base_url=upstream.url + "/v1", api_key="x", max_retries=0)
        want = direct.chat.completions.create(model="gen", max_tokens=16,
                                              messages=[{"role": "user", "content": "A brick is"}])
        want_text = want.choices[0].message.content
        (tmp_path / "answer.yaml").write_text(textwrap.dedent(f"""
            name: answer
            bricks:
              remote:
                openai: {{base_url: "{upstream.url}/v1", model: gen, call_timeout_s: 5}}
                retries: 1
                fallback: [local, {{default: {{text: "sorry", finish_reason: stop, prompt_tokens: 0,
                                              completion_tokens: 0}}}}]
              local: {{llm: {{transformers: {model}, max_tokens: 16}}}}
            graph: remote
        """))
        pipeline = load_pipeline(tmp_path / "answer.yaml")
        with pipeline:
            chunks = list(pipeline.stream({"prompt": _arr("A brick is")}, parameters={"max_tokens": 16}))
            assert "".join(c["text"][0] for c in chunks) == want_text and len(chunks) > 2
            assert set(chunks[-1].rungs.values()) == {"remote"}
            assert chunks[-1]["completion_tokens"][0] == want.usage.completion_tokens
            whole = pipeline.infer({"prompt": _arr("A brick is")})
            assert whole["text"][0] == want_text and set(whole.rungs.values()) == {"remote"}
            stop(upstream.proc)  # the upstream dies
            chunks = list(pipeline.stream({"prompt": _arr("## faults\nbrickwork")}))
            assert set(chunks[-1].rungs.values()) == {"local"} and chunks[-1].degraded
            assert "".join(c["text"][0] for c in chunks)
            whole = pipeline.infer({"prompt": _arr("## faults\nbrickwork")})
            assert set(whole.rungs.values()) == {"local"}
            assert pipeline.stats()["fallbacks"]["remote"]["local"] == 2


def test_remote_without_fallback_is_an_upstream_error(tmp_path: Path) -> None:
    brick = OpenAIBrick("http://127.0.0.1:9/v1", "gen", call_timeout_s=2)
    with bw.brick(brick).compile() as pipeline:
        with pytest.raises(bw.UpstreamError, match="openai brick"):
            list(pipeline.stream({"prompt": _arr("hi")}))
        with pytest.raises(bw.UpstreamError, match="openai brick"):
            pipeline.infer({"prompt": _arr("hi")})


def embed(text: np.ndarray) -> np.ndarray:
    return np.array([[len(str(t)), 2.0, 0.5] for t in text], dtype=np.float32)


def test_remote_embeddings() -> None:
    upstream = bw.function(embed, batch=True, inputs=[("text", "BYTES", (-1,))],
                           outputs=[("embedding", "FP32", (-1, 3))]).compile(name="vec")
    with serve_in_thread([upstream]) as s:
        brick = OpenAIBrick(s.url + "/v1", "vec", mode="embeddings", dim=3)
        with bw.brick(brick).compile() as pipeline:
            out = pipeline.infer({"text": np.array(["ab", "abcd"], dtype=object)})
            assert out["embedding"].tolist() == [[2.0, 2.0, 0.5], [4.0, 2.0, 0.5]]


def test_the_canned_answer_rung_when_no_model_answers(tmp_path: Path) -> None:
    """The last rung of a ladder: the upstream is unreachable, the default answers, labelled."""
    (tmp_path / "canned.yaml").write_text(textwrap.dedent("""
        name: canned
        bricks:
          remote:
            openai: {base_url: "http://127.0.0.1:9/v1", model: gen, call_timeout_s: 2}
            fallback: [{default: {text: "sorry, no model answered", finish_reason: stop,
                                  prompt_tokens: 0, completion_tokens: 0}}]
        graph: remote
    """))
    with load_pipeline(tmp_path / "canned.yaml") as pipeline:
        chunks = list(pipeline.stream({"prompt": _arr("hi")}))
        assert [c["text"][0] for c in chunks] == ["sorry, no model answered"]
        assert chunks[-1].rungs == {"remote": "default"} and chunks[-1].degraded
        whole = pipeline.infer({"prompt": _arr("hi")})
        assert whole["text"][0] == "sorry, no model answered" and whole.rungs == {"remote": "default"}
        assert pipeline.stats()["fallbacks"]["remote"] == {"default": 2}
