"""Pipelines as MCP tools (the official ``mcp`` SDK): ``brickwork mcp FILE...`` over stdio or
streamable HTTP. Each pipeline is one tool named after it; its input schema is generated from
the typed signature (:mod:`._tools`); a call is one item through the normal engine (batching,
timeouts, retries, fallbacks) and answers its outputs as structured content (plus the same JSON
as text). A request error (bad arguments, overload) is a tool error with the reason."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import RequestError
from ..pipeline import Pipeline
from ._tools import call_tool, input_schema, output_schema, tool_description

__all__ = ["mcp_server", "serve_mcp_http", "serve_mcp_stdio"]


def mcp_server(pipelines: Sequence[Pipeline]) -> Any:
    """A low-level ``mcp`` Server whose tools are ``pipelines``."""
    from mcp import types
    from mcp.server.lowlevel import Server

    by_name = {p.name: p for p in pipelines}
    tools = [types.Tool(name=p.name, description=tool_description(p), input_schema=input_schema(p),
                        output_schema=output_schema(p)) for p in pipelines]

    async def on_list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=tools)

    async def on_call_tool(ctx: Any, params: Any) -> Any:
        pipeline = by_name.get(params.name)
        if pipeline is None:
            return _error(types, f"unknown tool {params.name!r}; tools are {sorted(by_name)}")
        try:
            result = await call_tool(pipeline, params.arguments or {})
        except RequestError as exc:
            return _error(types, f"{type(exc).__name__}: {exc.message}")
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(result))],
                                    structured_content=result)

    return Server("brickwork", version=__version__, on_list_tools=on_list_tools, on_call_tool=on_call_tool)


def _error(types: Any, message: str) -> Any:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


async def serve_mcp_stdio(pipelines: Sequence[Pipeline]) -> None:
    from mcp.server.stdio import stdio_server

    for p in pipelines:
        await p.start()
    server = mcp_server(pipelines)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        for p in pipelines:
            await p.aclose()


async def serve_mcp_http(pipelines: Sequence[Pipeline], *, host: str = "127.0.0.1", port: int = 0,
                         on_ready: Any = None) -> None:
    """Streamable HTTP at ``http://host:port/mcp`` (uvicorn); ``on_ready(url)`` once listening."""
    import uvicorn

    for p in pipelines:
        await p.start()
    app = mcp_server(pipelines).streamable_http_app(host=host)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    try:
        if on_ready is not None:
            bound = sock.getsockname()[1]
            original = server.startup

            async def startup(sockets: Any = None) -> None:
                await original(sockets=sockets)
                on_ready(f"http://{host}:{bound}/mcp")

            server.startup = startup  # type: ignore[method-assign]
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        for p in pipelines:
            await p.aclose()
