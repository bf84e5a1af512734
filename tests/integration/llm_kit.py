"""The tiny generator every llm test uses: trained once (cached in examples/rag/.models)."""

from __future__ import annotations

from pathlib import Path

import pytest


def generator_dir() -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from examples.rag.build import build_generator

    return build_generator()
