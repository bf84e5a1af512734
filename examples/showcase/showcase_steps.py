"""Python bricks for the showcase pipeline (the dashboard and studio demo): every kind of step
brickwork draws, no model files. ``text`` → features and a language → (English: an ensemble of
three scorers; otherwise: a flaky scorer with a fallback rung) → a label."""

from __future__ import annotations

import time
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]
Score = Annotated[np.ndarray, bw.Tensor("FP32", (1,))]
POSITIVE = {"love", "great", "good", "excellent", "happy", "like", "best"}
NEGATIVE = {"hate", "terrible", "bad", "awful", "sad", "worst", "poor"}


class Prepared(TypedDict):
    features: Vec
    lang: str


def prepare(text: str) -> Prepared:
    """Four numbers per text and its language: "en" when any word is known, else "other"."""
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    pos, neg = sum(w in POSITIVE for w in words), sum(w in NEGATIVE for w in words)
    feats = np.array([pos, neg, text.count("!"), len(text) / 100.0], dtype=np.float32)
    return {"features": feats, "lang": "en" if pos + neg else "other"}


class Scored(TypedDict):
    score: Score


def _score(features: np.ndarray, w: tuple[float, ...]) -> np.ndarray:
    z = features @ np.array(w, dtype=np.float32)
    return (1 / (1 + np.exp(-z)))[:, None].astype(np.float32)


def lexicon(features: Vec) -> Scored:
    return {"score": _score(features, (1.5, -1.8, 0.3, 0.0))}


def emphasis(features: Vec) -> Scored:
    time.sleep(0.004)  # the slow member: the bottleneck under load
    return {"score": _score(features, (1.0, -1.0, 0.8, 0.1))}


def length(features: Vec) -> Scored:
    return {"score": _score(features, (1.2, -1.2, 0.0, -0.5))}


def flaky(features: Vec) -> Scored:
    """A remote-like scorer that fails on one call in four (the fallback rung answers)."""
    if np.random.default_rng().random() < 0.25:
        raise RuntimeError("flaky scorer unavailable")
    return {"score": _score(features, (0.5, -0.5, 0.2, 0.0))}


def neutral(features: Vec) -> Scored:
    return {"score": np.full((len(features), 1), 0.5, dtype=np.float32)}


class Decision(TypedDict):
    label: str
    confidence: float


def decide(score: float) -> Decision:
    return {"label": "positive" if score >= 0.5 else "negative", "confidence": abs(score - 0.5) * 2}

