from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import brickwork as bw
from brickwork.errors import ConfigError, GraphError
from brickwork.graph import dump_graph, load_graph, parse_pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

FULL = """
name: texts
defaults:
  batching: {max_batch_size: 16, max_delay_s: 0.001}
bricks:
  lang:    {python: "textfns:lang"}
  en:      {python: "textfns:english", rename: {outputs: {english: reply}}, replicas: 2}
  de:      {python: "textfns:german", rename: {outputs: {german: reply}}, timeout_s: 0.5}
  length:  {python: "textfns:length"}
  a:       {python: "textfns:vote_a", rename: {outputs: {vote_a: label}}}
  b:       {python: "textfns:vote_b", rename: {outputs: {vote_b: label}}}
  c:       {python: "textfns:vote_c", rename: {outputs: {vote_c: label}}}
graphs:
  route: {graph: [lang, {switch: {on: lang, cases: {en: en, de: de}}}], outputs: [reply]}
  votes: {graph: "length >> vote", outputs: [label]}
  vote:  {graph: {ensemble: {members: [a, b, c], combiner: majority}}}
graph:
  parallel: [route, votes]
outputs: [reply, label]
example: {text: ["hello", "der hund"]}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    shutil.copy(FIXTURES / "textfns.py", tmp_path / "textfns.py")
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_file_runs_every_combinator(tmp_path):
    parsed = load_graph(write(tmp_path, FULL))
    assert parsed.graph.name == "texts" and parsed.example == {"text": ["hello", "der hund"]}
    with parsed.compile() as pipe:
        assert pipe.plan.stages["en"].options.replicas == 2
        assert pipe.plan.stages["de"].policy.timeout_s == 0.5
        assert pipe.plan.stages["lang"].batching == bw.Batching(max_batch_size=16, max_delay_s=0.001)
        out = pipe.infer(parsed.example)
    assert out["reply"].tolist() == ["EN hello", "DE der hund"]
    assert out["label"].tolist() == [2, 2]


def test_dump_then_load_gives_the_same_plan(tmp_path):
    parsed = load_graph(write(tmp_path, FULL))
    text = dump_graph(parsed.graph, defaults=parsed.defaults, example=parsed.example)
    again = parse_pipeline(text, where="dumped", base_dir=tmp_path)
    assert again.compile().plan.describe() == parsed.compile().plan.describe()
    assert dump_graph(again.graph, defaults=again.defaults, example=again.example) == text


def test_brick_level_fallback_with_default(tmp_path):
    path = write(tmp_path, """
name: fb
bricks:
  primary: {python: "textfns:broken", fallback: [rules, {default: {broken: ["n/a"]}}]}
  rules:   {python: "textfns:reply_rules", rename: {outputs: {reply_rules: broken}}}
graph: primary
""")
    with load_graph(path).compile() as pipe:
        out = pipe.infer({"text": ["x"]})
    assert out["broken"].tolist() == ["rules: x"] and out.rungs == {"primary": "rules"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bricks: [1, 2\n", r"p.yaml:2: not valid YAML"),
        ("- a\n- b\n", r"expected a mapping with 'bricks' and 'graph'"),
        ("bricks: {a: {python: 'textfns:lang'}}\n", r"missing required field 'graph'"),
        ("bricks: {a: {python: 'textfns:lang'}}\ngraph: a\nbogus: 1\n", r"p.yaml:3: field 'bogus': expected one of"),
        ("bricks:\n  a: {pyton: 'textfns:lang'}\ngraph: a\n",
         r"p.yaml:2: field 'a': expected exactly one brick kind key .* found \['pyton'\]"),
        ("bricks:\n  a: {python: 'textfns:nope'}\ngraph: a\n", r"p.yaml:2: brick 'a': module 'textfns' has no attribute"),
        ("bricks:\n  a: {python: 'textfns:lang', replicas: 0}\ngraph: a\n", r"p.yaml:2: brick 'a' options: replicas"),
        ("bricks:\n  a: {python: 'textfns:lang'}\ngraph: a >> zz\n",
         r"p.yaml:3: field 'graph': expected the name of a brick or graph \(a\), found 'zz'"),
        ("bricks:\n  a: {python: 'textfns:lang'}\ngraph: {loop: [a]}\n", r"field 'graph': expected a brick name"),
        ("bricks:\n  a: {python: 'textfns:lang'}\ngraph:\n  switch: {cases: {}}\n",
         r"p.yaml:4: field 'switch': expected \{on: tensor"),
        ("bricks:\n  a: {python: 'textfns:lang'}\ngraphs:\n  g: {graph: h}\n  h: {graph: g}\ngraph: g\n",
         r"cycle between graphs: g -> h -> g"),
        ("bricks:\n  a: {python: 'textfns:lang', batching: {max_batch_size: -1}}\ngraph: a\n",
         r"max_batch_size must be an int >= 1"),
    ],
)
def test_malformed_files_name_file_line_field_expected_found(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_graph(write(tmp_path, text))


def test_compile_errors_surface_from_files(tmp_path):
    path = write(tmp_path, "bricks:\n  a: {python: 'textfns:lang'}\n  b: {python: 'textfns:vote_a'}\ngraph: a >> b\n")
    with pytest.raises(GraphError, match="dangling input: brick 'b' input 'length'"):
        load_graph(path).compile()


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read pipeline file"):
        load_graph(tmp_path / "nope.yaml")


def test_device_option_reaches_the_brick_before_it_loads(tmp_path):
    from brickwork.testing import FakeBrick

    path = write(tmp_path, "bricks:\n  f: {fake: true, device: 'cuda:1'}\ngraph: f\n")
    node = load_graph(path).graph.root
    assert node.options.device == "cuda:1" and node.brick.device == "cuda:1"
    assert bw.brick(FakeBrick(), device="cuda:0").brick.device == "cuda:0"
