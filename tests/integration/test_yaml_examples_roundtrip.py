"""Every example pipeline file survives load -> dump -> load as the same graph (its models are
built first: loading reads their signatures)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from tests.unit.test_yaml_roundtrip import shape

from brickwork.graph import dump_graph, load_graph, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/pipeline*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_file_survives_load_dump_load(path: Path) -> None:
    if (path.parent / "build.py").exists():
        importlib.import_module(f"examples.{path.parent.name}.build").build()  # cached under .models/
    first = load_graph(path)
    text = dump_graph(first.graph, defaults=first.defaults, example=first.example)
    second = parse_pipeline(text, base_dir=path.parent)
    assert shape(second.graph) == shape(first.graph), text
    assert second.defaults == first.defaults and second.example == first.example
