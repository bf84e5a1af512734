"""One source of truth for pipeline-file keys: stage keys come from the option dataclasses,
each brick kind's keys from its class's table, and the loader, the Python factories, dump_graph
and the reference all read them. Typos are refused at their own line with the known keys."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pytest

import brickwork as bw
from brickwork.cli import main
from brickwork.errors import ConfigError
from brickwork.graph import dump_graph, load_graph, parse_pipeline, render
from brickwork.options import STAGE_KEYS, Autoscale, FaultPolicy, RayPlacement, StageOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def write(tmp_path: Path, text: str) -> Path:
    shutil.copy(FIXTURES / "textfns.py", tmp_path / "textfns.py")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_stage_keys_are_the_option_fields_and_every_one_is_accepted_everywhere(tmp_path: Path) -> None:
    from dataclasses import fields

    # autoscale is spelled replicas: {min, max}; the policy's fields are given flat
    assert STAGE_KEYS == ({f.name for f in fields(StageOptions)} - {"policy", "autoscale"}) | {
        f.name for f in fields(FaultPolicy)}
    values = {"batching": {"max_batch_size": 4}, "replicas": {"min": 1, "max": 3}, "worker": "thread",
              "device": "cpu", "ray": {"num_cpus": 1}, "timeout_s": 1.5, "retries": 1,
              "retry_budget": 0.5, "breaker": {"failures": 2}, "retry_on": "any",
              "health_timeout_s": 9.0, "retry_backoff_s": 0.01, "retry_backoff_max_s": 0.5,
              "max_down_s": 20.0}
    assert set(values) == STAGE_KEYS  # a new option must be added here (and is then checked below)
    entry = ", ".join(f"{k}: {v!r}".replace("'", '"') for k, v in values.items())
    text = (f"name: keys\ndefaults: {{{entry}}}\n"
            f"bricks:\n  a: {{python: 'textfns:length', {entry}}}\ngraph: a\n")
    parsed = load_graph(write(tmp_path, text))
    node = parsed.graph.root
    expected = StageOptions().updated(**values)
    assert expected.autoscale == Autoscale(min=1, max=3) and expected.ray == RayPlacement(num_cpus=1)
    assert node.options == expected and parsed.defaults == expected
    python = bw.function(_length, name="a", **values)
    assert python.options == expected
    again = parse_pipeline(dump_graph(parsed.graph, defaults=parsed.defaults), base_dir=tmp_path)
    assert again.graph.root.options == expected and again.defaults == expected


def _length(text: str) -> int:
    return len(text)


@pytest.mark.parametrize(("defaults", "line", "bad", "known"), [
    ("defaults:\n  batching: {max_batch_size: 4, max_dealy_s: 0.1}\n", 3, "max_dealy_s", "max_delay_s"),
    ("defaults:\n  replicas: 2\n  replica: 2\n", 4, "replica", "health_timeout_s"),
    ("defaults:\n  breaker: {trips: 3}\n", 3, "trips", "half_open_probes"),
])
def test_a_typo_under_defaults_is_a_config_error_with_file_line_key_and_known_keys(
        tmp_path: Path, defaults: str, line: int, bad: str, known: str) -> None:
    text = f"name: t\n{defaults}bricks:\n  a: {{python: 'textfns:length'}}\ngraph: a\n"
    with pytest.raises(ConfigError) as err:
        load_graph(write(tmp_path, text))
    message = str(err.value)
    assert f"p.yaml:{line}:" in message and repr(bad) in message and repr(known) in message
    assert "__init__" not in message


def test_a_batching_typo_in_python_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown batching field\(s\) \['max_dealy_s'\]"):
        StageOptions().updated(batching={"max_dealy_s": 0.1})


def test_a_brick_typo_lists_every_key_including_rename_and_health_timeout_s(tmp_path: Path) -> None:
    text = "name: t\nbricks:\n  a:\n    python: 'textfns:length'\n    replicaz: 2\ngraph: a\n"
    with pytest.raises(ConfigError) as err:
        load_graph(write(tmp_path, text))
    message = str(err.value)
    assert "p.yaml:5:" in message and "'replicaz'" in message
    for key in ("rename", "health_timeout_s", "fallback", "replicas", "batch", "rowwise"):
        assert repr(key) in message, key


# kind -> its factory; the factory must take every key of the kind's YAML entry (the kind key
# is its first argument; keys only dump_graph writes are not for people)
FACTORIES = {"onnx": bw.onnx, "sklearn": bw.sklearn, "torch": bw.torch, "transformers": bw.transformers,
             "python": bw.function, "cast": getattr(bw, "cast", None)}
DUMP_ONLY = {"converted", "pickled"}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_each_factory_takes_every_key_its_yaml_entry_takes(kind: str) -> None:
    from brickwork.bricks import config_keys, kind_class

    params = inspect.signature(FACTORIES[kind]).parameters
    keys = [k.name for k in config_keys(kind_class(kind))]
    assert keys[0] == kind
    missing = sorted(set(keys[1:]) - DUMP_ONLY - set(params))
    assert missing == [], f"bw.{FACTORIES[kind].__name__} does not take {missing}"


def test_http_factory_splits_stage_options_by_the_shared_keys() -> None:
    node = bw.http("http://127.0.0.1:9/v1", inputs=[{"name": "x", "datatype": "FP32"}],
                   outputs=[{"name": "y", "datatype": "FP32"}],
                   name="h", timeout_s=2.0, health_timeout_s=5.0, call_timeout_s=1.0)
    assert node.options.policy.timeout_s == 2.0 and node.options.policy.health_timeout_s == 5.0
    assert node.brick.call_timeout_s == 1.0


def test_worker_ray_is_refused_when_the_graph_compiles_for_a_local_backend(tmp_path: Path) -> None:
    text = "name: t\nbricks:\n  a: {python: 'textfns:length', worker: ray}\ngraph: a\n"
    parsed = load_graph(write(tmp_path, text))
    with pytest.raises(ConfigError, match="worker='ray', which the 'local' backend does not run"):
        parsed.compile()
    with pytest.raises(ConfigError, match="use backend='ray'"):
        bw.function(_length, worker="ray").compile()
    assert main(["validate", str(tmp_path / "p.yaml")]) == 1
    assert main(["validate", "--backend", "ray", str(tmp_path / "p.yaml")]) == 0  # nothing starts


def test_a_ladders_name_survives_the_yaml_round_trip(tmp_path: Path) -> None:
    write(tmp_path, "")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        import textfns  # type: ignore[import-not-found]

        ladder = bw.function(textfns.broken).fallback(bw.function(textfns.english, name="broken"),
                                                     name="answer")
        text = dump_graph(bw.graph(ladder, name="p"))
        assert "name: answer" in text
        again = parse_pipeline(text, base_dir=tmp_path)
        assert again.graph.root.name == "answer"
        plan = again.compile().plan
        assert plan.root.name == "answer"  # the rung.<ladder> parameter and the ladder= label
    finally:
        sys.path.remove(str(tmp_path))


def test_graph_draws_a_fallback_with_an_ensemble_primary_from_the_vote(tmp_path: Path) -> None:
    text = ("name: t\nbricks:\n  n: {python: 'textfns:length'}\n  a: {python: 'textfns:vote_a'}\n"
            "  b: {python: 'textfns:vote_b'}\n  c: {python: 'textfns:vote_c', rename: {outputs: {vote_c: label}}}\n"
            "  a2: {python: 'textfns:vote_a', rename: {outputs: {vote_a: label}}}\n"
            "  b2: {python: 'textfns:vote_b', rename: {outputs: {vote_b: label}}}\n"
            "graph: [n, {fallback: [{ensemble: {members: [a2, b2], name: vote}}, c]}]\n")
    plan = load_graph(write(tmp_path, text)).compile().plan
    lines = render(plan).splitlines()
    ids = {line.split('"')[1].split(" [")[0].split(":")[0]: line.split()[0].split("[")[0].split("(")[0]
           for line in lines if '"' in line and "-->" not in line}
    failure = [line for line in lines if "on failure" in line]
    assert failure == [f'    {ids["vote"]} -->|"on failure"| {ids["c"]}'], lines


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"brickwork {bw.__version__}"


def test_an_http_declaration_without_a_datatype_is_refused() -> None:
    """A declared http input/output without a datatype became FP32 silently."""
    with pytest.raises(ConfigError, match="outputs 'score' has no datatype"):
        bw.http("http://127.0.0.1:9/v1", inputs=[{"name": "x", "datatype": "FP32"}],
                outputs=[{"name": "score"}])
