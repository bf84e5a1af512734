"""``brickwork mcp FILE...``: serve pipelines as MCP tools, over stdio (default: an agent
launches this command) or streamable HTTP (``--http``, at ``/mcp``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..graph import load_pipeline

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("mcp", help="serve pipelines as MCP tools (stdio, or streamable HTTP with --http)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--http", action="store_true", help="streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001, help="HTTP port (0 = any free port); default 8001")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server import serve_mcp_http, serve_mcp_stdio

    pipelines = [load_pipeline(path) for path in args.files]
    try:
        if args.http:
            def ready(url: str) -> None:
                print(f"brickwork mcp: {', '.join(p.name for p in pipelines)} on {url}", flush=True)

            asyncio.run(serve_mcp_http(pipelines, host=args.host, port=args.port, on_ready=ready))
        else:
            print(f"brickwork mcp: {', '.join(p.name for p in pipelines)} on stdio", file=sys.stderr, flush=True)
            asyncio.run(serve_mcp_stdio(pipelines))
    except KeyboardInterrupt:
        pass
    return 0
