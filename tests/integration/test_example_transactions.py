"""examples/transactions on its real model: hard rules decide first and the model never sees
those rows, a gradient-boosting model (sklearn → ONNX) scores the rest and beats the rules
score, and the rules answer alone, labelled, when the model crashes or times out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from examples._kit import find_node, make_unavailable
from examples.transactions import build, fraud

from brickwork.graph import load_graph, load_pipeline

YAML = Path(build.__file__).parent / "pipeline.yaml"
HELD_OUT_SEED = 7  # not the training seed


@pytest.fixture(scope="module")
def held_out() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    build.build()
    tx, y = fraud.synthetic_transactions(n=2000, seed=HELD_OUT_SEED)
    # one hand-made payment per hard rule (an amount over the limit is rare in the random set)
    crafted = {"amount": [15000.0, 80.0, 120.0, 0.5], "country": ["DE", "IR", "FR", "DE"],
               "tx_last_hour": [0, 1, 15, 0], "account_age_days": [400, 400, 400, 400],
               "hour": [12, 12, 12, 12], "new_device": [0, 0, 0, 0]}
    tx = {k: np.concatenate([v, np.array(crafted[k], dtype=v.dtype)]) for k, v in tx.items()}
    y = np.concatenate([y, [1, 1, 1, 0]])
    verdicts = [fraud.hard_rule(a, c, v) for a, c, v in zip(tx["amount"], tx["country"], tx["tx_last_hour"], strict=True)]
    return tx, y, np.array(verdicts, dtype=object)


@pytest.fixture(scope="module")
def answered(held_out: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> tuple[Any, dict[str, Any]]:
    tx, _, _ = held_out
    with load_pipeline(YAML) as pipe:
        pipe.reset_stats()
        out = pipe.infer(tx)
        return out, pipe.stats()


def test_hard_rules_decide_first_and_the_model_sees_only_the_rest(held_out: Any, answered: Any) -> None:
    _, _, verdicts = held_out
    out, stats = answered
    decided = verdicts[:, 0] != "score"
    assert 0 < decided.sum() < len(decided)
    assert out["decision"][decided].tolist() == verdicts[decided, 0].tolist()
    assert out["reason"][decided].tolist() == verdicts[decided, 1].tolist()
    assert set(out["reason"][decided]) == {"blocked_country", "velocity", "micro_payment", "amount_limit"}
    assert stats["stages"]["model"]["items"] == int((~decided).sum())
    assert out.rungs == {"model": "model"}


def test_the_model_scores_the_rest_and_beats_the_rules(held_out: Any, answered: Any) -> None:
    import onnxruntime as ort

    tx, y, verdicts = held_out
    out, _ = answered
    scored = verdicts[:, 0] == "score"
    x = fraud.features(**tx)[scored]
    session = ort.InferenceSession(str(build.build()), providers=["CPUExecutionProvider"])
    _, probabilities = session.run(None, {"features": x})
    np.testing.assert_allclose(out["fraud_score"][scored], probabilities[:, 1], atol=1e-6)
    assert set(out["reason"][scored]) == {"score"}
    model_acc = float(((out["fraud_score"][scored] >= 0.5) == y[scored]).mean())
    rules_acc = float(((fraud.rule_score(x) > fraud.RULE_THRESHOLD) == y[scored]).mean())
    majority = float(max(y[scored].mean(), 1 - y[scored].mean()))
    assert model_acc > rules_acc > majority, (model_acc, rules_acc, majority)


def _degraded_run(tx: dict[str, np.ndarray], how: str) -> Any:
    parsed = load_graph(YAML)
    node = find_node(parsed.graph, "model")
    if how == "crash":
        make_unavailable(node)
    else:  # the model answers, but after the stage's timeout_s (0.2 s)
        call = node.brick._call  # type: ignore[attr-defined]

        def slow(inputs: Any) -> Any:
            time.sleep(0.6)
            return call(inputs)

        node.brick._call = slow  # type: ignore[attr-defined]
    with parsed.compile() as pipe:
        out = pipe.infer(tx)
        return out, pipe.stats()


@pytest.mark.parametrize("how", ["crash", "timeout"])
def test_rules_answer_alone_when_the_model_is_unavailable(held_out: Any, answered: Any, how: str) -> None:
    tx, _, verdicts = held_out
    normal, _ = answered
    out, stats = _degraded_run(tx, how)
    assert out.rungs == {"model": "rules"} and out.degraded
    assert stats["fallbacks"]["model"] == {"rules": 1}
    decided = verdicts[:, 0] != "score"
    assert out["decision"][decided].tolist() == normal["decision"][decided].tolist()  # rules unaffected
    scored = ~decided
    expected = fraud.rule_score(fraud.features(**tx)[scored])
    np.testing.assert_array_equal(out["fraud_score"][scored], expected)
