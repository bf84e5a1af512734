"""``brickwork graph FILE --format mermaid|dot|svg|png``: draw the compiled plan, adapters
included. svg is drawn by brickwork itself (no Graphviz needed); png needs matplotlib (the
``viz`` extra) and is written to ``--out`` (stdout is text)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..graph import draw, load_graph, render, to_png, to_svg

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("graph", help="draw the compiled plan: Mermaid or Graphviz dot text, SVG or PNG")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=("mermaid", "dot", "svg", "png"), default="mermaid")
    p.add_argument("--out", "-o", metavar="PATH", help="write here instead of stdout (needed for png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plan = load_graph(args.file).compile().plan
    if args.format in ("mermaid", "dot", "svg"):
        text = to_svg(draw(plan)) if args.format == "svg" else render(plan, args.format)
        if args.out:
            Path(args.out).write_text(text)
        else:
            print(text, end="")
        return 0
    if not args.out and sys.stdout.isatty():
        raise ConfigError("--format png writes binary: give --out FILE.png (or redirect stdout)")
    data = to_png(draw(plan))
    if args.out:
        Path(args.out).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0
