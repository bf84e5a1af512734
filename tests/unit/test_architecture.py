"""The shape of the package, checked: the import graph has no cycle (module-level and lazy
imports both count), no module imports another package's private module, and every CLI verb
has its module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "brickwork"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The brickwork modules one import statement loads (its target, or each imported submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "brickwork" and a.name in MODULES]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "brickwork":
            return []
    else:
        package = importer if _is_package(importer) else importer.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        base = f"{package}.{node.module}" if node.module else package
    targets = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        targets.append(sub if sub in MODULES else base)
    return [t for t in targets if t in MODULES]


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` blocks import for the type checker only, never at run time."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only:
                edges.update(t for t in _resolve(name, node) if t != name)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def _component(module: str) -> str:
    """brickwork.engine._stage -> brickwork.engine; brickwork.plan -> brickwork.plan."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_cycle_between_modules():
    graph = import_graph()
    # the root package re-exports the public API: it imports everything and nothing imports it
    # except for its version string, so it is left out of the cycle check
    graph = {n: {m for m in e if m != "brickwork"} for n, e in graph.items() if n != "brickwork"}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycle_between_packages():
    pkgs: dict[str, set[str]] = {}
    for n, edges in import_graph().items():
        if n == "brickwork":
            continue
        pkgs.setdefault(_component(n), set()).update(
            _component(m) for m in edges if m != "brickwork" and _component(m) != _component(n))
    assert _cycle(pkgs) is None, " -> ".join(_cycle(pkgs) or [])


def test_no_private_import_across_packages():
    offenders = []
    for name, edges in import_graph().items():
        for target in edges:
            private = [i for i, part in enumerate(target.split(".")) if part.startswith("_")]
            if not private:
                continue
            owner = ".".join(target.split(".")[:private[0]])
            if not (name == owner or name.startswith(owner + ".")):
                offenders.append(f"{name} imports {target}")
    assert not offenders, "\n".join(sorted(offenders))


def test_every_cli_verb_has_its_module_and_parser():
    from brickwork.cli import COMMANDS, build_parser

    parser = build_parser()
    for verb in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([verb, "--help"])
        assert exc.value.code == 0, verb


def test_cli_registry_fails_loudly_on_a_missing_verb_module(monkeypatch):
    import brickwork.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "no_such_verb"))
    with pytest.raises(ModuleNotFoundError, match="no_such_verb"):
        cli.build_parser()


def test_faults_sits_below_the_engine():
    """The engine (executor, stages, process replicas) calls into faults; faults states what it
    needs of them as Protocols and never imports them back."""
    above = ("brickwork.engine", "brickwork.pipeline", "brickwork.server", "brickwork.graph",
             "brickwork.bricks", "brickwork.cli", "brickwork.client")
    offenders = sorted(f"{n} imports {m}" for n, edges in import_graph().items()
                       if _component(n) == "brickwork.faults" for m in edges if _component(m) in above)
    assert not offenders, "\n".join(offenders)
