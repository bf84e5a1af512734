from __future__ import annotations

import subprocess
import sys

import brickwork


def test_all_is_exact():
    import types

    public = {n for n in dir(brickwork) if not n.startswith("_") and n != "annotations"}
    modules = {n for n in public if isinstance(getattr(brickwork, n), types.ModuleType)}
    assert set(brickwork.__all__) - {"__version__"} == public - modules
    for name in brickwork.__all__:
        assert hasattr(brickwork, name), name


def test_import_pulls_in_no_heavy_framework():
    code = (
        "import sys, brickwork\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'ray', 'sklearn', 'transformers', 'onnx', 'uvicorn')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
