"""``brickwork studio FILE.yaml``: edit, check, draw and run a pipeline file in the browser."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("studio", help="edit a pipeline file in the browser: checked as you type, drawn, run",
                       description="Serve a page on 127.0.0.1 that edits FILE: compile() checks it as you "
                                   "type (errors at their line), the graph is redrawn, the example or your "
                                   "request runs with per-stage timings; Save writes the file.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1; the studio runs "
                                                       "the file's Python bricks: keep it local)")
    p.add_argument("--port", type=int, default=8100, help="TCP port; 0 picks a free one (default: 8100)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..studio import serve_studio

    def ready(url: str) -> None:
        print(f"brickwork: studio for {args.file} on {url}", flush=True)

    serve_studio(args.file, host=args.host, port=args.port, on_ready=ready)
    return 0
