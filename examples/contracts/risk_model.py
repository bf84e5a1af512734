"""Contract risk: a small scikit-learn model exported to ONNX, and a rules fallback.

``build(cache_dir)`` trains a GradientBoostingClassifier on synthetic contracts (seeded,
a few seconds on one core) and writes ``risk-v1.onnx``:

    input  "features"      float32 (N, 9)   columns: FEATURE_NAMES
    output "label"         int64   (N,)     1 = risky
    output "probabilities" float32 (N, 2)   [p(ok), p(risky)]

``rule_score(features)`` is the fallback rung: the same inputs, a hand-written score in
[0, 1] (float32, shape (N,)) that needs no model at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .fields import ContractFields

__all__ = [
    "EUR_RATES",
    "FEATURE_NAMES",
    "build",
    "features_from_fields",
    "rule_score",
    "synthetic_dataset",
    "train",
]

FEATURE_NAMES: tuple[str, ...] = (
    "log10_amount_eur",  # log10 of the amount converted to EUR (0 when missing)
    "days_to_deadline",  # due - signed, in days (0 when either is missing)
    "has_iban",  # a valid IBAN was found
    "has_email",
    "has_contract_no",
    "is_eur",
    "is_usd",
    "is_gbp",
    "is_chf",
)
EUR_RATES: dict[str, float] = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.05}
_FILE = "risk-v1.onnx"
_SEED = 20250314


def features_from_fields(fields: ContractFields) -> np.ndarray:
    """One page's fields -> float32 vector of shape (9,) in FEATURE_NAMES order."""
    from .fields import iban_is_valid

    amount = fields.amount_value
    rate = EUR_RATES.get(fields.currency or "", 1.0)
    log_amount = float(np.log10(max(amount * rate, 1.0))) if amount is not None else 0.0
    days = 0.0
    if fields.signed and fields.due:
        import datetime as dt

        delta = dt.date.fromisoformat(fields.due) - dt.date.fromisoformat(fields.signed)
        days = float(delta.days)
    currency = fields.currency or ""
    return np.array(
        [
            log_amount,
            days,
            float(fields.iban is not None and iban_is_valid(fields.iban)),
            float(fields.email is not None),
            float(fields.contract_no is not None),
            float(currency == "EUR"),
            float(currency == "USD"),
            float(currency == "GBP"),
            float(currency == "CHF"),
        ],
        dtype=np.float32,
    )


def rule_score(features: np.ndarray) -> np.ndarray:
    """Rules fallback: (N, 9) or (9,) float32 features -> (N,) float32 risk in [0, 1].

    Large amounts, short deadlines, a missing IBAN, e-mail or contract number and a
    currency other than EUR each add to the score.
    """
    x = np.atleast_2d(np.asarray(features, dtype=np.float32))
    log_amount, days = x[:, 0], x[:, 1]
    score = 0.35 * np.clip((log_amount - 4.0) / 2.0, 0.0, 1.0)
    score += 0.25 * np.clip((30.0 - days) / 30.0, 0.0, 1.0)
    score += 0.20 * (1.0 - x[:, 2])
    score += 0.05 * (1.0 - x[:, 3]) + 0.05 * (1.0 - x[:, 4])
    score += 0.10 * (1.0 - x[:, 5])
    return np.clip(score, 0.0, 1.0).astype(np.float32)


def synthetic_dataset(n: int = 4000, seed: int = _SEED) -> tuple[np.ndarray, np.ndarray]:
    """Features of random contracts and a noisy risk label (float32 X, int64 y)."""
    rng = np.random.default_rng(seed)
    currency = rng.choice(4, size=n, p=[0.55, 0.25, 0.12, 0.08])
    x = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    x[:, 0] = rng.uniform(2.5, 6.5, size=n)
    x[:, 1] = rng.integers(1, 150, size=n)
    x[:, 2] = rng.random(n) < 0.85
    x[:, 3] = rng.random(n) < 0.9
    x[:, 4] = rng.random(n) < 0.95
    x[np.arange(n), 5 + currency] = 1.0
    # The hidden truth is not the rules: amount and deadline interact.
    logit = (
        1.6 * (x[:, 0] - 3.6)
        + 1.2 * (x[:, 0] > 5.3) * (x[:, 1] < 21)
        - 0.04 * (x[:, 1] - 30.0)
        - 1.8 * x[:, 2]
        - 0.6 * x[:, 4]
        + 0.5 * (1.0 - x[:, 5])
    )
    y = (logit + rng.logistic(0.0, 0.6, size=n) > 0.0).astype(np.int64)
    return x, y


def train(seed: int = _SEED) -> tuple[Any, float]:
    """Fit the classifier on the synthetic set; returns (model, held-out accuracy)."""
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = synthetic_dataset(seed=seed)
    split = int(len(x) * 0.8)
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)
    model.fit(x[:split], y[:split])
    return model, float(model.score(x[split:], y[split:]))


def _default_cache() -> Path:
    return Path.home() / ".cache" / "brickwork" / "examples" / "contracts"


def build(cache_dir: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Train and export to ``<cache_dir>/risk-v1.onnx`` (reused when present)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    root = Path(cache_dir) if cache_dir is not None else _default_cache()
    path = root / _FILE
    if path.is_file() and not force:
        return path
    model, _ = train()
    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(onx.SerializeToString())
    tmp.replace(path)
    return path
