"""Card transactions for the rules + ML example: hard rules, features, a synthetic data set and
a gradient-boosting model exported to ONNX.

A transaction is six fields: ``amount`` (EUR), ``country`` (ISO 3166 alpha-2 of the merchant),
``tx_last_hour`` (the card's transactions in the past hour, velocity), ``account_age_days``,
``hour`` (0-23, local) and ``new_device`` (0/1).

* ``hard_rule(...)`` decides what policy decides, whatever a model says: amounts over the
  limit, blocked countries and velocity are blocked, micro-payments are allowed; anything
  else is ``"score"`` (left to the model).
* ``build(cache_dir)`` trains a GradientBoostingClassifier (seeded, ~3 s) on the synthetic
  transactions the hard rules leave to scoring and writes ``fraud-gbm-v1.onnx``:

      input  "features"      float32 (N, 6)   columns: FEATURE_NAMES
      output "label"         int64   (N,)     1 = fraud
      output "probabilities" float32 (N, 2)   [p(legit), p(fraud)]

* ``rule_score(features)``: the fallback when the model is unavailable, a hand-written
  fraud score in [0, 1] from the same features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AMOUNT_LIMIT", "BLOCKED_COUNTRIES", "FEATURE_NAMES", "HOME_COUNTRY", "MICRO_PAYMENT", "RULE_THRESHOLD",
    "VELOCITY_LIMIT", "Transactions", "build", "features", "hard_rule", "rule_score",
    "synthetic_transactions", "train",
]

AMOUNT_LIMIT = 10_000.0  # EUR: above this a single card payment is blocked
BLOCKED_COUNTRIES = frozenset({"KP", "IR", "SY", "CU"})  # sanctioned merchant countries
VELOCITY_LIMIT = 12  # transactions in the past hour: at or above, blocked
MICRO_PAYMENT = 1.0  # EUR: at or below, allowed without scoring
RULE_THRESHOLD = 0.3  # rule_score above this counts as fraud (the best cut on the training set)
HOME_COUNTRY = "DE"
FEATURE_NAMES: tuple[str, ...] = (
    "log10_amount", "tx_last_hour", "log1p_account_age_days", "night", "new_device", "foreign",
)
_COUNTRIES = ("DE", "DE", "DE", "DE", "FR", "NL", "AT", "US", "GB", "NG", "BR", "KP", "IR")
_FILE = "fraud-gbm-v1.onnx"
_SEED = 424242

Transactions = dict[str, np.ndarray]


def hard_rule(amount: float, country: str, tx_last_hour: int) -> tuple[str, str]:
    """(route, reason): route is "block", "allow" or "score" (undecided: ask the model)."""
    if country.upper() in BLOCKED_COUNTRIES:
        return "block", "blocked_country"
    if amount > AMOUNT_LIMIT:
        return "block", "amount_limit"
    if tx_last_hour >= VELOCITY_LIMIT:
        return "block", "velocity"
    if amount <= MICRO_PAYMENT:
        return "allow", "micro_payment"
    return "score", ""


def features(amount: np.ndarray, country: np.ndarray, tx_last_hour: np.ndarray,
             account_age_days: np.ndarray, hour: np.ndarray, new_device: np.ndarray) -> np.ndarray:
    """Columns of FEATURE_NAMES, float32 (N, 6)."""
    foreign = np.array([str(c).upper() != HOME_COUNTRY for c in country.tolist()], dtype=np.float32)
    return np.stack([
        np.log10(np.maximum(np.asarray(amount, dtype=np.float64), 0.0) + 1.0),
        np.asarray(tx_last_hour, dtype=np.float64),
        np.log1p(np.maximum(np.asarray(account_age_days, dtype=np.float64), 0.0)),
        (np.asarray(hour) < 6).astype(np.float64),
        np.asarray(new_device, dtype=np.float64),
        foreign,
    ], axis=1).astype(np.float32).reshape(-1, len(FEATURE_NAMES))


def rule_score(features: np.ndarray) -> np.ndarray:
    """Fallback fraud score in [0, 1], float32 (N,): big amounts, bursts, young accounts,
    night-time, new devices and foreign merchants each add to it."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float32))
    score = 0.30 * np.clip((x[:, 0] - 2.0) / 2.0, 0.0, 1.0)
    score += 0.20 * np.clip(x[:, 1] / 10.0, 0.0, 1.0)
    score += 0.15 * np.clip(1.0 - x[:, 2] / np.log1p(365.0), 0.0, 1.0)
    score += 0.10 * x[:, 3] + 0.15 * x[:, 4] + 0.10 * x[:, 5]
    return np.clip(score, 0.0, 1.0).astype(np.float32)


def synthetic_transactions(n: int = 6000, seed: int = _SEED) -> tuple[Transactions, np.ndarray]:
    """Random transactions and a noisy fraud label (int64), seeded."""
    rng = np.random.default_rng(seed)
    country = np.array([_COUNTRIES[i] for i in rng.integers(len(_COUNTRIES), size=n)], dtype=object)
    amount = np.round(np.exp(rng.normal(3.6, 1.6, size=n)), 2)
    tx = {
        "amount": amount,
        "country": country,
        "tx_last_hour": rng.poisson(1.5, size=n) + (rng.random(n) < 0.05) * rng.integers(3, 20, size=n),
        "account_age_days": rng.integers(0, 3000, size=n),
        "hour": rng.integers(0, 24, size=n),
        "new_device": (rng.random(n) < 0.15).astype(np.int64),
    }
    x = features(**tx).astype(np.float64)
    # the hidden truth: interactions the hand-written rule score only approximates
    logit = (
        -1.0 + 2.6 * (x[:, 0] > 2.7) * x[:, 4] + 2.0 * x[:, 3] * x[:, 5]
        + 0.8 * np.maximum(x[:, 1] - 3.0, 0.0) + 2.6 * (x[:, 2] < 3.0) * (x[:, 0] > 2.3)
        + 1.5 * x[:, 5] * (x[:, 0] > 3.0)
    )
    y = (logit + rng.logistic(0.0, 0.5, size=n) > 0.0).astype(np.int64)
    return tx, y


def _to_score(tx: Transactions) -> np.ndarray:
    routes = [hard_rule(a, c, v)[0] for a, c, v in zip(tx["amount"], tx["country"], tx["tx_last_hour"], strict=True)]
    return np.array([r == "score" for r in routes])


def train(seed: int = _SEED) -> tuple[Any, dict[str, float]]:
    """Fit on the first 80 % of what the hard rules leave to scoring; held-out accuracies of
    the model, of ``rule_score > RULE_THRESHOLD`` and of always answering "legit"."""
    from sklearn.ensemble import GradientBoostingClassifier

    tx, y = synthetic_transactions(seed=seed)
    keep = _to_score(tx)
    x = features(**tx)[keep]
    y = y[keep]
    split = int(len(x) * 0.8)
    model = GradientBoostingClassifier(n_estimators=80, max_depth=3, random_state=seed)
    model.fit(x[:split], y[:split])
    held_x, held_y = x[split:], y[split:]
    return model, {
        "model": float(model.score(held_x, held_y)),
        "rules": float(((rule_score(held_x) > RULE_THRESHOLD) == held_y).mean()),
        "majority": float(max(held_y.mean(), 1 - held_y.mean())),
    }


def build(cache_dir: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Train and export to ``<cache_dir>/fraud-gbm-v1.onnx`` (reused when present)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    path = Path(cache_dir) / _FILE
    if path.is_file() and not force:
        return path
    model, _ = train()
    onx = to_onnx(model, initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
                  options={id(model): {"zipmap": False}}, target_opset=17)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(onx.SerializeToString())
    tmp.replace(path)
    return path
