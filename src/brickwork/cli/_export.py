"""``brickwork export FILE --brick NAME --target web|onnx --out PATH``.

``onnx``: the brick's model as one ONNX file (torch/sklearn bricks exported, parity-checked).
``web``: a folder with the model, onnxruntime-web (vendored from npm) and a static page that
runs it in the browser; serve the folder with any static server (``python -m http.server``).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="write a brick as an ONNX file or a browser page (onnxruntime-web)")
    p.add_argument("file", metavar="FILE", help="pipeline YAML")
    p.add_argument("--brick", required=True, metavar="NAME", help="the brick to export")
    p.add_argument("--target", required=True, choices=("web", "onnx"), help="web (folder) or onnx (file)")
    p.add_argument("--out", required=True, metavar="PATH", help="output folder (web) or file (onnx)")
    p.add_argument("--data", default=None, metavar="ROWS",
                   help="rows for the parity check of a torch/sklearn export (.npz or JSON)")
    p.add_argument("--input", default=None,
                   help="web: the page's example request, JSON text or file (default: the file's example)")
    p.add_argument("--cache", default=None, help="where the onnxruntime-web npm package is kept "
                   "(default .models/npm)")
    p.add_argument("--write", action="store_true", help="replace existing files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..accel import WebExport, export_brick
    from ._io import read_inputs

    inputs = None
    if args.input is not None:
        text = args.input
        inputs = read_inputs(None, text) if not text.lstrip().startswith("{") else read_inputs(text, None)
    result = export_brick(args.file, brick=args.brick, target=args.target, out=args.out, data=args.data,
                          inputs=inputs, write=args.write, cache=args.cache)
    if isinstance(result, WebExport):
        print(f"wrote {result.directory}/ ({len(result.files)} files): serve it, e.g. "
              f"python -m http.server -d {result.directory}, and open index.html")
    else:
        print(f"wrote {Path(result)}")
    return 0
