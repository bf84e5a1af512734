"""The Python bricks of ``pipeline.yaml``: tokenize the question for MiniLM, pool, retrieve the
nearest passages of ``corpus.md``, and cite them after the generated answer.

The passages are embedded once (first call) with the same MiniLM ONNX model the pipeline runs
(text_router's build exports it); retrieval is a dot product of unit vectors.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypedDict

import numpy as np

import brickwork as bw

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from examples.text_router import embed  # noqa: E402

HERE = Path(__file__).parent
MINILM = HERE.parent / "text_router" / ".models" / "minilm-l6-v2.onnx"
TOP_K = 2

Texts = Annotated[np.ndarray, bw.Tensor("BYTES")]
Tokens = Annotated[np.ndarray, bw.Tensor("INT64", (-1,))]


def passages() -> list[tuple[str, str]]:
    """(title, text) of every ``## title`` section of corpus.md."""
    out = []
    for block in (HERE / "corpus.md").read_text().split("## ")[1:]:
        title, _, text = block.partition("\n")
        out.append((title.strip(), " ".join(text.split())))
    return out


def _texts(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.tolist()]


@lru_cache(maxsize=1)
def _embedder() -> Any:
    return embed.Embedder(MINILM, intra_op_num_threads=1)


@lru_cache(maxsize=1)
def _index() -> np.ndarray:
    return _embedder().encode([f"{t}. {x}" for t, x in passages()])  # type: ignore[no-any-return]


class Encoded(TypedDict):
    input_ids: Tokens
    attention_mask: Tokens
    token_type_ids: Tokens


def tokenize(question: Texts) -> Encoded:
    feeds = embed.tokenize(_embedder().tokenizer, _texts(question))
    return {"input_ids": feeds["input_ids"], "attention_mask": feeds["attention_mask"],
            "token_type_ids": feeds["token_type_ids"]}


def pool(last_hidden_state: Annotated[np.ndarray, bw.Tensor("FP32", (-1, embed.DIM))],
         attention_mask: Tokens) -> Annotated[np.ndarray, bw.Tensor("FP32", (embed.DIM,))]:
    return embed.l2_normalize(embed.mean_pool(last_hidden_state, attention_mask))


class Retrieved(TypedDict):
    prompt: Texts
    sources: Texts


def retrieve(embedding: Annotated[np.ndarray, bw.Tensor("FP32", (embed.DIM,))]) -> Retrieved:
    """The nearest passages per question; the prompt opens the best one (``## title``) so the
    generator, trained on these passages, answers from it."""
    scores = embedding @ _index().T
    order = np.argsort(-scores, axis=1)[:, :TOP_K]
    titles = [t for t, _ in passages()]
    prompts = np.array([f"## {titles[row[0]]}\n" for row in order], dtype=object)
    sources = np.array([", ".join(f"[{k + 1}] {titles[i]}" for k, i in enumerate(row)) for row in order],
                       dtype=object)
    return {"prompt": prompts, "sources": sources}


def cite(text: Texts, finish_reason: Texts, sources: Texts) -> Annotated[np.ndarray, bw.Tensor("BYTES")]:
    """Per chunk (after the streaming llm): the text as it comes; the last chunk adds the
    passages it was drawn from."""
    out = np.empty(len(text), dtype=object)
    for i, (t, done, src) in enumerate(zip(_texts(text), _texts(finish_reason), _texts(sources), strict=True)):
        out[i] = f"{t}\n\nSources: {src}" if done else t
    return out
