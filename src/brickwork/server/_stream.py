"""Streamed responses (Server-Sent Events): a :class:`StreamReply` is what a front returns
instead of a whole body; the HTTP server writes it with chunked transfer encoding and the ASGI
adapter with ``more_body``. When the client goes away the chunk iterator is closed, which closes
the pipeline's stream and so cancels the generation and frees its slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["StreamReply", "write_asgi", "write_chunked"]

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


class StreamReply:
    """``status``, ``headers`` and ``chunks``: an async generator of body pieces."""

    __slots__ = ("chunks", "headers", "status")

    def __init__(self, chunks: AsyncGenerator[bytes, None], status: int = 200,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.headers = SSE_HEADERS if headers is None else headers
        self.chunks = chunks


async def write_chunked(reply: StreamReply, conn: Any, status_line: bytes, *, keep_alive: bool) -> bool:
    """Write ``reply`` on an HTTP/1.1 connection (``conn.transport``; None once the client has
    gone). Returns False when the client went away mid-stream (the connection is finished)."""
    head = [status_line]
    for k, v in reply.headers:
        head += (k, b": ", v, b"\r\n")
    head.append(b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    if conn.transport is None:
        await reply.chunks.aclose()
        return False
    conn.transport.write(b"".join(head))
    try:
        async for piece in reply.chunks:
            if conn.transport is None or conn.transport.is_closing():
                return False  # the client hung up: the finally below stops the generation
            if piece:
                conn.transport.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                if getattr(conn, "write_paused", False):  # a client that does not read: wait, buffer no more
                    conn.drained = asyncio.get_running_loop().create_future()
                    await conn.drained
                    conn.drained = None
        if conn.transport is None:
            return False
        conn.transport.write(b"0\r\n\r\n")
        return True
    finally:
        await reply.chunks.aclose()


async def write_asgi(reply: StreamReply, send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    try:
        async for piece in reply.chunks:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await reply.chunks.aclose()
