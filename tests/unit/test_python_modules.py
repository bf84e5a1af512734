"""`python: module:fn` in a pipeline file loads the module from that file's folder, one module
per folder (two folders with a `steps.py` each get their own), and a module that cannot be
imported is a ConfigError naming the YAML line and the module's own file:line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import import_object
from brickwork.cli import main
from brickwork.graph import load_graph

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


def copy_quickstart(folder: Path, label: str) -> Path:
    """The quickstart in ``folder`` with a ``steps.decision`` that answers ``label``."""
    shutil.copytree(QUICKSTART, folder)
    steps = folder / "steps.py"
    steps.write_text(steps.read_text() + f"\n\ndef decision(probability: float) -> str:\n    return {label!r}\n")
    return folder / "pipeline.yaml"


def test_two_folders_with_a_steps_module_each_get_their_own(tmp_path):
    a = copy_quickstart(tmp_path / "a", "from-a")
    b = copy_quickstart(tmp_path / "b", "from-b")
    with load_graph(a).compile() as pa, load_graph(b).compile() as pb:
        assert list(pa.infer({"text": ["great"]})["decision"]) == ["from-a"]
        assert list(pb.infer({"text": ["great"]})["decision"]) == ["from-b"]


def test_a_function_only_one_folder_defines_is_found_there(tmp_path):
    a = copy_quickstart(tmp_path / "a", "a")
    b = copy_quickstart(tmp_path / "b", "b")
    (tmp_path / "b" / "steps.py").write_text(
        (tmp_path / "b" / "steps.py").read_text() + "\n\ndef verdict(probability: float) -> str:\n    return 'v'\n")
    text = b.read_text().replace('"steps:decision"', '"steps:verdict"').replace("decision]", "verdict]")
    b.write_text(text)
    load_graph(a)
    with load_graph(b).compile() as pb:  # was: module 'steps' has no attribute 'verdict'
        assert list(pb.infer({"text": ["x"]})["verdict"]) == ["v"]


def test_installed_modules_still_import_by_name(tmp_path):
    assert import_object("json:dumps", base_dir=tmp_path)([1]) == "[1]"
    assert import_object("os.path:join") is __import__("os").path.join


def test_a_package_beside_the_file_and_relative_imports(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("FACTOR = 3\n")
    (pkg / "fns.py").write_text("from . import helpers\n\ndef triple(x: float) -> float:\n"
                                "    return x * helpers.FACTOR\n")
    fn = import_object("mypkg.fns:triple", base_dir=tmp_path)
    assert fn(2.0) == 6.0


def test_the_spec_of_a_folder_module_function_rebuilds_in_its_folder(tmp_path):
    copy_quickstart(tmp_path / "a", "from-a")
    fn = import_object("steps:decision", base_dir=tmp_path / "a")
    spec = bw.function(fn).brick.spec()
    assert spec.config["python"] == "steps:decision"
    assert Path(spec.base_dir) == (tmp_path / "a").resolve()


def write_pipeline(folder: Path, module_text: str, name: str = "p") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mod.py").write_text(module_text)
    yaml_path = folder / f"{name}.yaml"
    yaml_path.write_text("name: p\nbricks:\n  f: {python: \"mod:f\"}\ngraph: f\n")
    return yaml_path


def test_a_syntax_error_names_the_yaml_line_and_the_module_line(tmp_path):
    path = write_pipeline(tmp_path, "def f(x: float) -> float:\n    return x +\n")
    with pytest.raises(bw.ConfigError) as info:
        load_graph(path)
    msg = str(info.value)
    assert f"{path}:3: brick 'f'" in msg
    assert f"{tmp_path / 'mod.py'}:2" in msg and "syntax error" in msg


def test_a_module_that_raises_at_import_names_its_line(tmp_path):
    path = write_pipeline(tmp_path, "import os\n\nX = 1 / 0\n\ndef f(x: float) -> float:\n    return x\n")
    with pytest.raises(bw.ConfigError) as info:
        load_graph(path)
    msg = str(info.value)
    assert f"{path}:3: brick 'f'" in msg
    assert f"{tmp_path / 'mod.py'}:3" in msg and "ZeroDivisionError" in msg


def test_a_missing_dependency_names_the_import_line(tmp_path):
    path = write_pipeline(tmp_path, "import numpy\nimport no_such_dependency_xyz\n")
    with pytest.raises(bw.ConfigError) as info:
        load_graph(path)
    assert f"{tmp_path / 'mod.py'}:2" in str(info.value)
    assert "no_such_dependency_xyz" in str(info.value)


def test_validate_reports_a_broken_module_and_goes_on_to_the_next_file(tmp_path, capsys):
    bad = write_pipeline(tmp_path / "bad", "def f(:\n")
    good = QUICKSTART / "pipeline.yaml"
    assert main(["validate", str(bad), str(good)]) == 1
    out = capsys.readouterr()
    assert f"{bad}: invalid" in out.err and "syntax error" in out.err
    assert "Traceback" not in out.err
    assert f"{good}: ok" in out.out


def test_the_module_is_not_run_twice_for_two_bricks(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "mod.py").write_text("import itertools\nCOUNT = itertools.count()\nLOADS = next(COUNT)\n"
                                   "def f(x: float) -> float:\n    return x\n"
                                   "def g(x: float) -> float:\n    return x\n")
    first = import_object("mod:f", base_dir=folder)
    second = import_object("mod:g", base_dir=folder)
    assert sys.modules[first.__module__] is sys.modules[second.__module__]
    assert np.isclose(first(1.0), 1.0)
