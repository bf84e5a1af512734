"""``brickwork validate FILE``: parse and type-check a pipeline; exit 0, or 1 with the errors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import BrickworkError
from ..graph import load_graph
from ._backend import add_backend_args, backend_of

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a pipeline file without running it")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    add_backend_args(p)  # the backend it will run on: worker: ray needs --backend ray
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            pipeline = load_graph(path).compile(backend=backend_of(args))
        except BrickworkError as exc:
            failed += 1
            print(f"{path}: invalid\n  {exc}", file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{path}: ok")
            print(pipeline.plan.describe())
    return 1 if failed else 0
