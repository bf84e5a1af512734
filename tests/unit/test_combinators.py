"""Every combinator run through the in-process executor on plain Python bricks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated

import numpy as np
import pytest

import brickwork as bw
from brickwork.errors import GraphError, InterfaceMismatch, InvalidInput, ModelError, WorkerCrashed


def upper(text: str) -> str:
    return text.upper()


def length(text: str) -> int:
    return len(text)


def lang(text: str) -> str:
    return "de" if text.startswith(("der", "die", "das")) else "en"


def test_parallel_branches_run_concurrently_and_merge():
    barrier = threading.Barrier(2, timeout=5)

    def slow_a(x: float) -> float:
        if x:  # not the warm-up call (zeros): both branches must be in flight at once
            barrier.wait()
        return x + 1

    def slow_b(x: float) -> float:
        if x:
            barrier.wait()
        return x + 2

    g = bw.parallel(bw.function(slow_a, blocking=True), bw.function(slow_b, blocking=True))
    with g.compile() as pipe:
        out = pipe.infer({"x": [1.0]})
    assert out["slow_a"].tolist() == [2.0] and out["slow_b"].tolist() == [3.0]


def test_fan_out_then_merge_in_sequence():
    def combine(upper: str, length: int) -> str:
        return f"{upper}:{length}"

    g = bw.parallel(bw.function(upper), bw.function(length)) >> bw.function(combine)
    with g.compile() as pipe:
        assert pipe.infer({"text": ["ab", "xyz"]})["combine"].tolist() == ["AB:2", "XYZ:3"]


def test_switch_routes_each_item_and_keeps_order():
    calls = []

    def english(text: str) -> str:
        calls.append(("en", text))
        return "EN " + text

    def german(text: str) -> str:
        calls.append(("de", text))
        return "DE " + text

    g = bw.function(lang) >> bw.switch("lang", {
        "en": bw.function(english, outputs="reply"), "de": bw.function(german, outputs="reply")})
    texts = ["hello", "der hund", "world", "die katze"]
    with g.compile() as pipe:
        out = pipe.infer({"text": texts})
    assert out["reply"].tolist() == ["EN hello", "DE der hund", "EN world", "DE die katze"]
    calls = [c for c in calls if c[1]]  # drop the warm-up calls (empty strings)
    assert sorted(calls) == sorted([("en", "hello"), ("en", "world"), ("de", "der hund"), ("de", "die katze")])


def test_switch_without_default_rejects_unknown_value():
    def only_en(text: str) -> str:
        return text

    g = bw.function(lang) >> bw.switch("lang", {"en": bw.function(only_en, outputs="reply")})
    with g.compile() as pipe, pytest.raises(InvalidInput, match=r"item 0 has lang='de'.*no default"):
        pipe.infer({"text": ["das auto"]})


def test_switch_cases_must_publish_the_same_tensors():
    def a(text: str) -> str:
        return text

    def b(text: str) -> int:
        return 1

    with pytest.raises(GraphError, match="every case must publish the same tensors"):
        (bw.function(lang) >> bw.switch("lang", {"en": bw.function(a), "de": bw.function(b)})).compile()
    with pytest.raises(InterfaceMismatch, match="does not match"):
        (bw.function(lang) >> bw.switch("lang", {"en": bw.function(a, outputs="r"),
                                                  "de": bw.function(b, outputs="r")})).compile()


def _voter(name: str, answers: list[int]):
    def vote(x: int) -> int:
        return answers[x]

    return bw.function(vote, name=name, outputs="label")


def test_majority_and_weighted_vote():
    members = [_voter("a", [1, 2, 3]), _voter("b", [1, 5, 4]), _voter("c", [2, 5, 5])]
    with bw.ensemble(members, combiner="majority").compile() as pipe:
        # item 2: three different votes -> the first member's vote wins the tie
        assert pipe.infer({"x": [0, 1, 2]})["label"].tolist() == [1, 5, 3]
    members = [_voter("a", [1, 2]), _voter("b", [7, 7]), _voter("c", [7, 2])]
    with bw.ensemble(members, combiner="weighted", weights=[3.0, 1.0, 1.0]).compile() as pipe:
        assert pipe.infer({"x": [0, 1]})["label"].tolist() == [1, 2]


def test_mean_of_probabilities_with_label():
    def member(probs: list[list[float]], name: str):
        def predict(x: int) -> Annotated[np.ndarray, bw.Tensor("FP32", (2,))]:
            return np.array(probs[x], np.float32)

        return bw.function(predict, name=name, outputs="probabilities")

    g = bw.ensemble([member([[0.9, 0.1]], "m1"), member([[0.2, 0.8]], "m2"), member([[0.3, 0.7]], "m3")],
                    combiner="mean", label="label")
    with g.compile() as pipe:
        out = pipe.infer({"x": [0]})
    np.testing.assert_allclose(out["probabilities"], [[1.4 / 3, 1.6 / 3]], rtol=1e-6)
    assert out["label"].tolist() == [1]


def test_ensemble_refusals():
    with pytest.raises(GraphError, match="needs at least two members"):
        bw.ensemble([_voter("a", [1])])
    with pytest.raises(GraphError, match="one weight per member"):
        bw.ensemble([_voter("a", [1]), _voter("b", [1])], combiner="weighted")

    def text_label(x: int) -> str:
        return "x"

    with pytest.raises(InterfaceMismatch, match="every member must publish the same spec"):
        bw.ensemble([_voter("a", [1]), bw.function(text_label, outputs="label")]).compile()


def crashing(x: float) -> float:
    raise WorkerCrashed("worker died")


def raising(x: float) -> float:
    raise ValueError("bad model")


def backup(x: float) -> float:
    return -x


def test_fallback_on_machinery_failure_labels_the_rung():
    g = bw.function(crashing, outputs="y").fallback(bw.function(backup, outputs="y"))
    with g.compile() as pipe:
        out = pipe.infer({"x": [2.0]})
    assert out["y"].tolist() == [-2.0]
    assert out.rungs == {"crashing": "backup"} and out.degraded


def test_fallback_does_not_hide_model_errors_by_default():
    g = bw.function(raising, outputs="y").fallback(bw.function(backup, outputs="y"))
    with g.compile() as pipe, pytest.raises(ModelError, match="bad model"):
        pipe.infer({"x": [2.0]})
    g = bw.function(raising, outputs="y").fallback(bw.function(backup, outputs="y"), on="any")
    with g.compile() as pipe:
        assert pipe.infer({"x": [2.0]}).rungs == {"raising": "backup"}


def test_fallback_ladder_ends_in_default_answer():
    g = bw.function(crashing, outputs="y").fallback(bw.function(crashing, name="c2", outputs="y"),
                                                    default={"y": [0.5]})
    with g.compile() as pipe:
        out = pipe.infer({"x": [1.0, 2.0, 3.0]})
    assert out["y"].tolist() == [0.5, 0.5, 0.5] and out.rungs == {"crashing": "default"}


def test_fallback_primary_success_is_not_degraded():
    def fine(x: float) -> float:
        return x

    g = bw.function(fine, outputs="y").fallback(bw.function(backup, outputs="y"))
    with g.compile() as pipe:
        out = pipe.infer({"x": [1.0]})
    assert out.rungs == {"fine": "fine"} and not out.degraded


def test_fallback_rungs_must_match_primary():
    def other(x: float) -> str:
        return "a"

    with pytest.raises(GraphError, match=r"rung 1 does not publish \['y'\]"):
        bw.function(backup, outputs="y").fallback(bw.function(other)).compile()
    with pytest.raises(GraphError, match="default answer must give exactly"):
        bw.function(backup, outputs="y").fallback(default={"z": 1}).compile()


def test_graph_as_a_brick_hides_its_intermediates():
    def plus1(x: float) -> float:
        return x + 1

    def times2(plus1: float) -> float:
        return plus1 * 2

    inner = bw.graph(bw.function(plus1) >> bw.function(times2), name="inner", outputs=["times2"])

    def report(times2: float) -> str:
        return f"={times2}"

    outer = bw.graph(inner >> bw.function(report), name="outer", outputs=["report", "times2"])
    with outer.compile() as pipe:
        out = pipe.infer({"x": [1.0]})
    assert out["report"].tolist() == ["=4.0"] and set(out) == {"report", "times2"}

    def peek(plus1: float) -> float:
        return plus1

    with pytest.raises(GraphError, match="dangling input: brick 'peek'"):
        (inner >> bw.function(peek)).compile()


def test_ainfer_on_callers_loop_and_concurrent_requests():
    def slow(x: float) -> float:
        time.sleep(0.05)
        return x * 10

    async def main():
        async with bw.function(slow, blocking=True, replicas=4).compile() as pipe:
            results = await asyncio.gather(*(pipe.ainfer({"x": [float(i)]}) for i in range(8)))
        return [r["slow"].tolist() for r in results]

    assert asyncio.run(main()) == [[i * 10.0] for i in range(8)]


def test_request_deadline_becomes_504():
    def slow(x: float) -> float:
        time.sleep(0.5)
        return x

    with bw.function(slow, blocking=True).compile() as pipe, pytest.raises(bw.DeadlineExceeded):
        pipe.infer({"x": [1.0]}, timeout_s=0.05)


def test_invalid_inputs_are_explained():
    with bw.function(upper).compile() as pipe:
        with pytest.raises(InvalidInput, match=r"unknown input\(s\) \['txt'\]"):
            pipe.infer({"txt": ["a"]})
        with pytest.raises(InvalidInput, match=r"missing input\(s\) \['text'\]"):
            pipe.infer({})
        with pytest.raises(InvalidInput, match="expected datatype BYTES, got FP64"):
            pipe.infer({"text": np.array([1.0])})
