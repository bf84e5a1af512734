"""``brickwork run FILE --input JSON``: run one request and print the outputs as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from ..graph import load_graph
from ._backend import add_backend_args, backend_of
from ._io import read_inputs, tensors_to_json

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run one request through a pipeline and print the outputs")
    p.add_argument("file", metavar="FILE")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", help="the request as JSON: {\"tensor\": [...], ...}")
    src.add_argument("--input-file", help="a JSON file with the request ('-' for stdin)")
    p.add_argument("--timeout-s", type=float, default=None, help="the request's deadline, seconds")
    add_backend_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    parsed = load_graph(args.file)
    if args.input is None and args.input_file is None and parsed.example is not None:
        inputs = dict(parsed.example)
    else:
        inputs = read_inputs(args.input, args.input_file)
    with parsed.compile(backend=backend_of(args)) as pipeline:
        result = pipeline.infer(inputs, timeout_s=args.timeout_s)
    extra = {"_rungs": result.rungs} if result.rungs else None
    print(tensors_to_json(result, extra))
    return 0
