"""Python bricks for the quickstart pipeline: text → features → (ONNX scorer) → decision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np

import brickwork as bw

HERE = Path(__file__).resolve().parent  # this folder: scorer.onnx is here, whatever the cwd

POSITIVE = {"love", "great", "good", "excellent", "happy", "wonderful", "like", "best"}
NEGATIVE = {"hate", "terrible", "bad", "awful", "sad", "worst", "poor", "horrible"}


def features(text: str) -> Annotated[np.ndarray, bw.Tensor("FP32", (4,))]:
    """Four numbers per text: positive words, negative words, exclamation marks, length/100."""
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    return np.array(
        [sum(w in POSITIVE for w in words), sum(w in NEGATIVE for w in words), text.count("!"), len(text) / 100.0],
        dtype=np.float32,
    )


def decision(probability: float) -> str:
    """The scorer's probability (a float per item) as a label."""
    return "positive" if probability >= 0.5 else "negative"
