"""``brickwork graph FILE --format mermaid|dot``: draw the compiled plan, adapters included."""

from __future__ import annotations

import argparse
from typing import Any

from ..graph import load_graph, render

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("graph", help="print the compiled plan as Mermaid or Graphviz dot")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plan = load_graph(args.file).compile().plan
    print(render(plan, args.format), end="")
    return 0
