"""Deadline ensembles (k-of-n by a deadline) through the in-process executor on FakeBricks.

Timing asserts are loose on purpose (the machine is shared): "about the deadline" means well
under the slow member's delay, never a tight bound."""

from __future__ import annotations

import time

import numpy as np
import pytest

import brickwork as bw
from brickwork.errors import DeadlineExceeded, GraphError
from brickwork.graph import Ensemble, dump_graph, load_graph
from brickwork.testing import FakeBrick

SLOW_S = 1.5


def voter(name: str, scale: float, *, delay_s: float = 0.0, fail_on: float | None = None) -> bw.Node:
    """Votes label = x * scale, after delay_s."""
    return bw.brick(FakeBrick(name, dtype="INT64", output_name="label", scale=scale,
                              delay_s=delay_s, fail_on=fail_on))


def timed(pipe: bw.Pipeline, x: list[int]) -> tuple[bw.InferResult, float]:
    t0 = time.perf_counter()
    out = pipe.infer({"x": np.asarray(x, np.int64)})
    return out, time.perf_counter() - t0


def test_slow_member_answer_comes_at_the_deadline_with_the_others_vote():
    members = [voter("a", 1), voter("b", 1), voter("slow", 2, delay_s=SLOW_S)]
    g = bw.ensemble(members, k=3, deadline_s=0.1, name="vote")
    with g.compile() as pipe:
        out, took = timed(pipe, [1, 2, 3])
        assert out["label"].tolist() == [1, 2, 3]
        assert out.members == {"vote": ("a", "b")}
        assert 0.09 <= took < SLOW_S / 2, took  # at the deadline, not at the slow member's pace
        stats = pipe.stats()["ensembles"]["vote"]
    assert stats["stragglers"] == 1 and stats["deadline"] == 1 and stats["answers"] == 1
    assert stats["member.a"] == 1 and "member.slow" not in stats


def test_answers_as_soon_as_k_members_answered():
    members = [voter("a", 1), voter("b", 1), voter("slow", 2, delay_s=SLOW_S)]
    with bw.ensemble(members, k=2, deadline_s=10.0, name="vote").compile() as pipe:
        out, took = timed(pipe, [4])
        assert out["label"].tolist() == [4] and out.members == {"vote": ("a", "b")}
        assert took < SLOW_S / 2, took
        assert "deadline" not in pipe.stats()["ensembles"]["vote"]


def test_without_a_slow_member_all_answer_before_the_deadline():
    members = [voter("a", 1), voter("b", 3), voter("c", 3)]
    with bw.ensemble(members, deadline_s=5.0, name="vote").compile() as pipe:
        out, took = timed(pipe, [1, 2])
        assert out["label"].tolist() == [3, 6]  # b and c outvote a
        assert out.members == {"vote": ("a", "b", "c")}
        assert took < 2.5, took  # nobody waited for the 5 s deadline


def test_too_few_members_by_the_deadline_is_deadline_exceeded_or_the_ladder():
    members = [voter("a", 1), voter("slow1", 1, delay_s=SLOW_S), voter("slow2", 1, delay_s=SLOW_S)]
    g = bw.ensemble(members, deadline_s=0.1, min_members=2, name="vote")
    with g.compile() as pipe, pytest.raises(DeadlineExceeded, match="1 of 3 members answered") as err:
        pipe.infer({"x": np.asarray([1], np.int64)})
    assert err.value.status == 504
    members = [voter("a", 1), voter("slow1", 1, delay_s=SLOW_S), voter("slow2", 1, delay_s=SLOW_S)]
    ladder = bw.ensemble(members, deadline_s=0.1, min_members=2, name="vote").fallback(
        default={"label": -1}, name="safe")
    with ladder.compile() as pipe:
        out = pipe.infer({"x": np.asarray([1, 2], np.int64)})
        assert out["label"].tolist() == [-1, -1] and out.rungs == {"safe": "default"}
        assert pipe.stats()["ensembles"]["vote"]["short"] == 1


def test_a_failing_member_is_left_out_and_weights_follow_the_answering_members():
    members = [voter("a", 1, fail_on=1), voter("b", 2), voter("c", 3)]
    g = bw.ensemble(members, combiner="weighted", weights=[5.0, 1.0, 2.0], deadline_s=2.0, name="w")
    with g.compile() as pipe:
        out = pipe.infer({"x": np.asarray([1], np.int64)})
        assert out["label"].tolist() == [3]  # a failed: c (weight 2) beats b (weight 1)
        assert out.members == {"w": ("b", "c")}
        assert pipe.stats()["ensembles"]["w"]["failed"] == 1
        out = pipe.infer({"x": np.asarray([2], np.int64)})
        assert out["label"].tolist() == [2]  # all answered: a's weight 5 wins
        assert out.members == {"w": ("a", "b", "c")}


def test_plain_ensembles_keep_the_default_path():
    with bw.ensemble([voter("a", 1), voter("b", 1)]).compile() as pipe:
        out = pipe.infer({"x": np.asarray([1], np.int64)})
        assert out.members == {} and "ensembles" not in pipe.stats()


def test_refusals():
    two = [voter("a", 1), voter("b", 1)]
    with pytest.raises(GraphError, match="k=3 must be a count from 1 to the 2 members"):
        bw.ensemble(two, k=3)
    with pytest.raises(GraphError, match="deadline_s=0 must be seconds > 0"):
        bw.ensemble(two, deadline_s=0)
    with pytest.raises(GraphError, match="min_members needs k or deadline_s"):
        bw.ensemble(two, min_members=1)
    with pytest.raises(GraphError, match="min_members=2 must be a count from 1 to k=1"):
        bw.ensemble(two, k=1, min_members=2)


def test_yaml_round_trip(tmp_path):
    src = tmp_path / "p.yaml"
    src.write_text(
        "name: sensors\n"
        "bricks:\n"
        "  a: {fake: true, dtype: INT64, output_name: label}\n"
        "  b: {fake: true, dtype: INT64, output_name: label}\n"
        f"  slow: {{fake: true, dtype: INT64, output_name: label, delay_s: {SLOW_S}}}\n"
        "graph: {ensemble: {members: [a, b, slow], k: 3, deadline_s: 0.1, min_members: 2, name: vote}}\n")
    f = load_graph(src)
    ens = f.graph.root
    assert isinstance(ens, Ensemble) and (ens.k, ens.deadline_s, ens.min_members) == (3, 0.1, 2)
    assert "deadline_s: 0.1" in dump_graph(f.graph)
    with f.compile() as pipe:
        out, took = timed(pipe, [7])
        assert out["label"].tolist() == [7] and out.members == {"vote": ("a", "b")}
        assert took < SLOW_S / 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(src.read_text().replace("min_members: 2", "quorum: 2"))
    with pytest.raises(bw.ConfigError, match="quorum"):
        load_graph(bad)
