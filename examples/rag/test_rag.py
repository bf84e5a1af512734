"""The RAG example end to end on its local models: retrieval picks the right passages, the
answer cites them, streaming gives the same answer, and the OpenAI client gets it from
``brickwork serve``'s front (the pipeline's text in -> text out fits /v1/chat/completions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def pipeline() -> Iterator[object]:
    pytest.importorskip("transformers")
    pytest.importorskip("onnxruntime")
    from examples.rag.build import build_generator
    from examples.text_router.build import build as build_minilm

    build_minilm()
    build_generator()
    from brickwork.graph import load_pipeline

    p = load_pipeline(HERE / "pipeline.yaml")
    with p:
        yield p


@pytest.mark.parametrize(("question", "source"), [
    ("What happens when a model fails or hangs?", "faults"),
    ("How are requests batched together?", "batching"),
    ("How do I train a model across clients that keep their data?", "federated"),
])
def test_the_answer_cites_the_nearest_passage(pipeline: object, question: str, source: str) -> None:
    out = pipeline.infer({"question": np.array([question], dtype=object)})  # type: ignore[attr-defined]
    assert out["sources"][0].startswith(f"[1] {source}")
    answer = out["answer"][0]
    assert answer.endswith(f"Sources: {out['sources'][0]}") and len(answer) > len(out["sources"][0]) + 20
    streamed = "".join(c["answer"][0] for c in pipeline.stream(  # type: ignore[attr-defined]
        {"question": np.array([question], dtype=object)}))
    assert streamed == answer


def test_the_openai_client_streams_the_rag_answer(pipeline: object) -> None:
    openai = pytest.importorskip("openai")
    from brickwork.graph import load_pipeline
    from brickwork.server import serve_in_thread

    with serve_in_thread([load_pipeline(HERE / "pipeline.yaml")]) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "What happens when a model fails or hangs?"}]
        parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="rag", messages=messages, stream=True) if c.choices]
        whole = client.chat.completions.create(model="rag", messages=messages)
        assert "".join(parts) == whole.choices[0].message.content
        assert "Sources: [1] faults" in whole.choices[0].message.content
        assert whole.usage.completion_tokens > 0
