"""bw.cast: what compile() recommends on a lossy edge exists, works as printed (Python and
YAML), loses precision but refuses values that do not fit, and survives the recipe/YAML trip."""

from __future__ import annotations

import re
from typing import Annotated

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import brick_from_spec
from brickwork.errors import ConfigError, GraphError, InterfaceMismatch, InvalidInput
from brickwork.graph import dump_graph, parse_pipeline


def wide(x: float) -> Annotated[np.ndarray, bw.Tensor("FP64", ())]:
    return np.float64(x)


def narrow(y: Annotated[np.ndarray, bw.Tensor("FP32", ())]) -> float:
    return float(y) * 2


def test_the_lossy_edge_hint_works_as_printed_in_python_and_yaml(tmp_path) -> None:
    with pytest.raises(InterfaceMismatch) as err:
        (bw.function(wide, outputs="y") >> bw.function(narrow)).compile()
    message = str(err.value)
    python = re.search(r"(bw\.cast\(\{.*?\}\)) in Python", message)
    yaml_form = re.search(r"(\{cast: \{.*?\}\}) in YAML", message)
    assert python and yaml_form, message

    cast = eval(python.group(1), {"bw": bw})  # the hint, exactly as printed
    with (bw.function(wide, outputs="y") >> cast >> bw.function(narrow)).compile() as p:
        assert p.infer({"x": [1.5, -2.0]})["narrow"].tolist() == [3.0, -4.0]

    (tmp_path / "fns.py").write_text(
        "import numpy as np\nfrom typing import Annotated\nimport brickwork as bw\n"
        "def wide(x: float) -> Annotated[np.ndarray, bw.Tensor('FP64', ())]:\n    return np.float64(x)\n"
        "def narrow(y: Annotated[np.ndarray, bw.Tensor('FP32', ())]) -> float:\n    return float(y) * 2\n")
    text = (f"name: c\nbricks:\n  w: {{python: 'fns:wide', outputs: y}}\n  fix: {yaml_form.group(1)}\n"
            "  n: {python: 'fns:narrow'}\ngraph: w >> fix >> n\n")
    parsed = parse_pipeline(text, base_dir=tmp_path)
    with parsed.compile() as p:
        assert p.infer({"x": [1.5]})["narrow"].tolist() == [3.0]
    again = parse_pipeline(dump_graph(parsed.graph), base_dir=tmp_path)
    assert again.graph.root.steps[1].brick.targets == {"y": "FP32"}


@pytest.mark.parametrize(("values", "source", "target", "why"), [
    ([1.0, 1e300], np.float64, "FP32", "beyond"),
    ([1.0, np.nan], np.float64, "INT64", "NaN and infinity"),
    ([np.inf], np.float32, "INT32", "NaN and infinity"),
    ([2.5], np.float64, "INT64", "fractional part"),
    ([2**40], np.int64, "INT32", "outside -2147483648..2147483647"),
    ([-1], np.int64, "UINT8", "outside 0..255"),
    ([2], np.int64, "BOOL", "only 0 and 1"),
    ([70000], np.int64, "FP16", "beyond"),
])
def test_a_value_that_does_not_fit_is_refused_naming_tensor_item_and_value(values, source, target, why) -> None:
    brick = bw.cast({"t": target}, inputs=[("t", bw.TensorSpec("t", source, (-1,)).dtype)]).brick
    with pytest.raises(InvalidInput, match=why) as err:
        brick({"t": np.array(values, dtype=source)})
    assert "'t' item" in str(err.value)


def test_precision_may_be_lost_but_fitting_values_pass() -> None:
    brick = bw.cast({"a": "FP32", "b": "INT8", "c": "BOOL"},
                    inputs={"a": "FP64", "b": "FP64", "c": "INT64"}).brick
    out = brick({"a": np.array([0.1, np.nan, np.inf]), "b": np.array([-128.0, 127.0, 3.0]),
                 "c": np.array([0, 1, 1])})
    assert out["a"].dtype == np.float32 and out["a"][0] == np.float32(0.1) and np.isnan(out["a"][1])
    assert out["b"].tolist() == [-128, 127, 3] and out["b"].dtype == np.int8
    assert out["c"].tolist() == [False, True, True]


def test_text_and_missing_tensors_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="text needs a python brick"):
        bw.cast({"x": "BYTES"})

    def text(x: str) -> str:
        return x

    with pytest.raises(GraphError, match="is BYTES"):
        (bw.function(text, outputs="y") >> bw.cast({"y": "FP32"})).compile()
    with pytest.raises(GraphError, match="no tensor 'zz'"):
        (bw.function(wide, outputs="y") >> bw.cast({"zz": "FP32"})).compile()


def test_the_recipe_rebuilds_a_bound_cast_in_another_process() -> None:
    graph = bw.function(wide, outputs="y") >> bw.cast({"y": "FP32"}, name="c")
    graph.compile()
    cast = graph.steps[1].brick
    rebuilt = brick_from_spec(cast.spec())
    assert rebuilt.signature == cast.signature
    assert rebuilt({"y": np.array([0.5])})["y"].dtype == np.float32
