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


SUBPACKAGES = ["bricks", "client", "engine", "graph", "protocol", "server", "cli"]


def _public_modules() -> list[str]:
    """Every public module and package of brickwork (no leading underscore in its path)."""
    import pkgutil

    names = ["brickwork"]
    for info in pkgutil.walk_packages(brickwork.__path__, "brickwork."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def test_every_public_module_has_an_exact_all():
    """__all__ names exist and are every public name the module defines (not what it imported
    for its own use): the one place a user looks is honest in every package."""
    import importlib
    import inspect
    import types

    for mod_name in _public_modules():
        if mod_name.endswith("__main__"):
            continue
        mod = importlib.import_module(mod_name)
        exported = getattr(mod, "__all__", None)
        assert exported is not None, f"{mod_name} has no __all__"
        for name in exported:
            assert hasattr(mod, name), f"{mod_name}.__all__ names {name!r}, which it lacks"
        assert len(set(exported)) == len(exported), f"{mod_name}.__all__ repeats a name"
        for name, value in vars(mod).items():
            if name.startswith("_") or isinstance(value, types.ModuleType) or name in exported:
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                defined_in = getattr(value, "__module__", "") or ""
                # a name the package defines (or re-exports from its private modules) is public
                # and must be listed; one it imported from elsewhere for its own use is not
                assert not defined_in.startswith(mod_name + "._") and defined_in != mod_name, \
                    f"{mod_name}.{name} is public but not in __all__"
    assert set(SUBPACKAGES) <= {m.split(".")[1] for m in _public_modules() if "." in m}


def test_typed_marker_ships():
    from pathlib import Path

    assert (Path(brickwork.__file__).parent / "py.typed").is_file()


def test_import_pulls_in_no_heavy_framework():
    code = (
        "import sys, brickwork\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'ray', 'sklearn', 'transformers', 'onnx', 'uvicorn')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
