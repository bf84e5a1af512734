"""The Python bricks of ``pipeline.yaml``: hard rules, features, the rules fallback, decisions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw

# Imported by file name from the pipeline file; the model code lives in the examples package.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from examples._kit import text_tensor  # noqa: E402
from examples.transactions import fraud  # noqa: E402

REVIEW_AT = 0.5  # p(fraud) from the model or the rules score: at or above, a human reviews
BLOCK_AT = 0.9  # at or above, blocked outright

Ints = Annotated[np.ndarray, bw.Tensor("INT64")]
Floats = Annotated[np.ndarray, bw.Tensor("FP64")]
Texts = Annotated[np.ndarray, bw.Tensor("BYTES")]
Features = Annotated[np.ndarray, bw.Tensor("FP32", (len(fraud.FEATURE_NAMES),))]
Probabilities = Annotated[np.ndarray, bw.Tensor("FP32", (2,))]


class Route(TypedDict):
    route: str
    rule: str


def hard_rules(amount: float, country: str, tx_last_hour: int) -> Route:
    """Policy first: "block" / "allow" with the rule that fired, or "score" for the model."""
    route, rule = fraud.hard_rule(amount, country, tx_last_hour)
    return {"route": route, "rule": rule}


def features(amount: Floats, country: Texts, tx_last_hour: Ints, account_age_days: Ints, hour: Ints,
             new_device: Ints) -> Features:
    """The model's six features (see ``fraud.FEATURE_NAMES``)."""
    return fraud.features(amount, country, tx_last_hour, account_age_days, hour, new_device)


class Scored(TypedDict):
    label: Ints
    probabilities: Probabilities


def rules_score(features: Features) -> Scored:
    """The fallback rung: the hand-written score in the model's outputs ([p(legit), p(fraud)])."""
    score = fraud.rule_score(features)
    return {"label": (score > fraud.RULE_THRESHOLD).astype(np.int64),
            "probabilities": np.stack([1.0 - score, score], axis=1).astype(np.float32)}


class Decision(TypedDict):
    decision: Texts
    fraud_score: Annotated[np.ndarray, bw.Tensor("FP32")]
    reason: Texts


def from_score(probabilities: Probabilities) -> Decision:
    """Scored transactions: block, review or allow by p(fraud)."""
    p = probabilities[:, 1].astype(np.float32)
    decision = np.where(p >= BLOCK_AT, "block", np.where(p >= REVIEW_AT, "review", "allow"))
    return {"decision": text_tensor(decision.tolist()), "fraud_score": p, "reason": text_tensor(["score"] * len(p))}


def from_rule(route: Texts, rule: Texts) -> Decision:
    """Transactions a hard rule decided: its verdict, score 1 (block) or 0 (allow), the rule."""
    verdict = [str(r) for r in route.tolist()]
    return {"decision": text_tensor(verdict),
            "fraud_score": np.array([v == "block" for v in verdict], dtype=np.float32),
            "reason": text_tensor([str(r) for r in rule.tolist()])}
