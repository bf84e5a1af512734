"""docs/yaml.md and docs/pipeline.schema.json are generated from the tables the loader checks
against: stale files fail here, the schema accepts every example pipeline and refuses a typo
the loader refuses, and every key the loader accepts is in the reference."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from brickwork.cli import main
from brickwork.graph import json_schema, json_schema_text, reference_markdown
from brickwork.graph._yaml import _Loader
from brickwork.options import STAGE_KEYS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/pipeline*.yaml"))  # pipeline files (not fed configs)


def test_checked_in_reference_and_schema_are_current() -> None:
    assert (ROOT / "docs" / "yaml.md").read_text() == reference_markdown(), \
        "docs/yaml.md is stale: run `brickwork schema > docs/yaml.md`"
    assert (ROOT / "docs" / "pipeline.schema.json").read_text() == json_schema_text(), \
        "docs/pipeline.schema.json is stale: run `brickwork schema --json > docs/pipeline.schema.json`"


def test_the_cli_verb_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == reference_markdown()
    assert main(["schema", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def _validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_schema_accepts_every_example(path: Path) -> None:
    doc = yaml.load(path.read_text(), Loader=_Loader)
    errors = [e.message for e in _validator().iter_errors(json.loads(json.dumps(doc)))]
    assert errors == []


@pytest.mark.parametrize("typo", [
    "defaults: {batching: {max_dealy_s: 0.1}}",
    "defaults: {replica: 2}",
    "bricks: {a: {onnx: m.onnx, replicaz: 2}}",
    "bricks: {a: {onnx: m.onnx, breaker: {trips: 3}}}",
    "bricks: {a: {sklearn: m.joblib, methd: predict}}",
    "graph: {ensemble: {members: [a, a], combiner: mean, lable: x}}",
])
def test_the_schema_refuses_typos_the_loader_refuses(typo: str) -> None:
    doc = {"bricks": {"a": {"onnx": "m.onnx"}}, "graph": "a", **yaml.safe_load(typo)}
    assert list(_validator().iter_errors(doc)), typo


def test_every_key_is_in_the_reference() -> None:
    text = reference_markdown()
    for key in [*STAGE_KEYS, "rename", "fallback", "onnx_options", "max_length", "cast",
                "max_delay_s", "half_open_probes", "combiner", "label", "cases", "step"]:
        assert f"| `{key}` |" in text, key
