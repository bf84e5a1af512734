"""Frameworks are optional: importing brickwork, its brick modules and its factories pulls in
none of them; only loading a brick does."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "onnxruntime", "onnx", "sklearn", "skl2onnx", "transformers", "ray", "joblib")


def _imported_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        f"import json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_brickwork_imports_no_framework() -> None:
    assert _imported_after("import brickwork") == []


def test_brick_modules_import_no_framework() -> None:
    code = ("import brickwork.bricks.onnx, brickwork.bricks.sklearn, brickwork.bricks.torch, "
            "brickwork.bricks.transformers")
    assert _imported_after(code) == []


def test_probe_sees_a_framework_when_one_is_imported() -> None:
    """The probe itself works: loading an ONNX brick does import onnxruntime."""
    import pytest

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    code = (
        "import tempfile, onnx\n"
        "from onnx import helper, TensorProto\n"
        "g = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',"
        " [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N'])],"
        " [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N'])])\n"
        "p = tempfile.mktemp(suffix='.onnx'); onnx.save(helper.make_model(g), p)\n"
        "import brickwork as bw; bw.onnx(p)"
    )
    assert "onnxruntime" in _imported_after(code)
