"""Fault policy and fallback ladders in YAML: the same FaultPolicy the Python API builds, what
makes a ladder move on (`on: any` in the ladder's last item), and the static default answer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import brickwork as bw
from brickwork.errors import ConfigError, ModelError
from brickwork.graph import dump_graph, load_graph, parse_pipeline
from brickwork.testing import FakeBrick

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

POLICY = """
name: policy
bricks:
  model: {fake: true, timeout_s: 0.25, retries: 2, retry_budget: 0.2, retry_on: any,
          health_timeout_s: 30.0,
          breaker: {failures: 3, failure_ratio: 0.5, window: 10, reset_after_s: 2.0, half_open_probes: 2}}
graph: model
"""

# 'raising' raises (a model error); 'crashing' says its worker died (machinery)
LADDERS = """
name: ladders
bricks:
  raising:  {fake: true, fail_on: 1.0, fallback: [rules, {on: any}]}
  strict:   {fake: true, fail_on: 1.0}
  crashing: {fake: true, crash_on: 1.0, blocking: false}
  rules:    {fake: true, scale: -1.0, blocking: false}
graph: {PLACEHOLDER}
"""


def write(tmp_path: Path, text: str) -> Path:
    shutil.copy(FIXTURES / "textfns.py", tmp_path / "textfns.py")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_every_fault_policy_field_in_yaml_is_the_python_policy(tmp_path: Path) -> None:
    parsed = load_graph(write(tmp_path, POLICY))
    policy = parsed.compile().plan.stages["model"].policy
    expected = bw.FaultPolicy(timeout_s=0.25, retries=2, retry_budget=0.2, retry_on="any",
                              health_timeout_s=30.0,
                              breaker=bw.Breaker(failures=3, failure_ratio=0.5, window=10,
                                                 reset_after_s=2.0, half_open_probes=2))
    assert policy == expected
    python = bw.brick(FakeBrick("model"), timeout_s=0.25, retries=2, retry_budget=0.2, retry_on="any",
                      health_timeout_s=30.0, breaker=expected.breaker)
    assert python.compile().plan.stages["model"].policy == expected
    assert "retry_on: any" in dump_graph(parsed.graph)


@pytest.mark.parametrize(("entry", "message"), [
    ("breaker: {failures: 0}", "Breaker.failures, window and half_open_probes must be >= 1"),
    ("breaker: {trips: 3}", "field 'trips': expected one of the breaker keys ['failure_ratio', "
                            "'failures', 'half_open_probes', 'reset_after_s', 'window']"),
    ("retry_on: sometimes", "retry_on must be 'machinery' or 'any'"),
    ("timeout_s: 0", "timeout_s must be a positive number"),
])
def test_a_bad_policy_field_is_refused_with_the_line_and_the_field(tmp_path: Path, entry: str,
                                                                   message: str) -> None:
    text = f"name: bad\nbricks:\n  model: {{fake: true, {entry}}}\ngraph: model\n"
    with pytest.raises(ConfigError, match=r"p\.yaml:3: ") as err:
        load_graph(write(tmp_path, text))
    assert message in str(err.value)


def test_a_model_error_moves_the_ladder_only_when_it_says_on_any(tmp_path: Path) -> None:
    for graph, ladder in (("raising", "raising"), ("{fallback: [strict, rules, {on: any}]}", "strict")):
        with load_graph(write(tmp_path, LADDERS.replace("{PLACEHOLDER}", graph))).compile() as pipe:
            out = pipe.infer({"x": [1.0]})
        assert out.rungs == {ladder: "rules"} and out["y"].tolist() == [-1.0] and out.degraded
    # the default: a model that raised is reported, not hidden behind the rules
    graph = "{fallback: [strict, rules]}"
    with load_graph(write(tmp_path, LADDERS.replace("{PLACEHOLDER}", graph))).compile() as pipe:
        with pytest.raises(ModelError, match="fails on 1.0"):
            pipe.infer({"x": [1.0]})
        assert pipe.infer({"x": [2.0]}).rungs == {"strict": "strict"}
        assert pipe.stats()["fallbacks"] == {"strict": {"strict": 1}}


def test_static_default_answer_ends_the_ladder_and_is_labelled_default(tmp_path: Path) -> None:
    graph = "{fallback: [crashing, {default: {y: 0.5}}]}"
    parsed = load_graph(write(tmp_path, LADDERS.replace("{PLACEHOLDER}", graph)))
    with parsed.compile() as pipe:
        out = pipe.infer({"x": [1.0, 1.0, 1.0]})
        assert out["y"].tolist() == [0.5, 0.5, 0.5] and out.rungs == {"crashing": "default"}
        assert pipe.stats()["fallbacks"] == {"crashing": {"default": 1}}


def test_on_and_default_survive_dump_and_load(tmp_path: Path) -> None:
    graph = "{fallback: [strict, {default: {y: 0.5}, on: any}]}"
    parsed = load_graph(write(tmp_path, LADDERS.replace("{PLACEHOLDER}", graph)))
    text = dump_graph(parsed.graph)
    assert "'on': any" in text  # quoted by the dumper, so YAML 1.1 readers do not see True
    with parse_pipeline(text, where="dumped", base_dir=tmp_path).compile() as pipe:
        out = pipe.infer({"x": [1.0, 2.0]})  # the model raised: 'on: any' reached the default
    assert out.rungs == {"strict": "default"} and out["y"].tolist() == [0.5, 0.5]


def test_an_unknown_trigger_is_refused(tmp_path: Path) -> None:
    graph = "{fallback: [crashing, rules, {on: sometimes}]}"
    with pytest.raises(ConfigError, match=r"field 'on': expected 'machinery' .* found 'sometimes'"):
        load_graph(write(tmp_path, LADDERS.replace("{PLACEHOLDER}", graph)))
