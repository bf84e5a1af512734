"""A lean HTTP/1.1 server: an asyncio protocol over httptools' parser, calling ``App.handle``.

Measured on the 2-core bench machine, uvicorn + ASGI cost ~33 µs of server CPU per request
before the app runs; this protocol costs ~13 µs for the same trivial response (and a far lower
p99), which is most of what separates brickwork's per-request CPU from the raw-socket floor.

What it does: keep-alive and ``Connection: close``/HTTP/1.0, chunked request bodies (httptools
decodes them), ``Expect: 100-continue``, pipelined requests answered in order (reading pauses
while a request is being answered), HEAD, a graceful drain (stop accepting, close idle
connections, let busy ones finish their response).

What it refuses, each limit a :class:`ServerConfig` field (docs/serving.md, "Limits"):
a request target over ``max_url_bytes`` (414), headers over ``max_header_bytes`` or
``max_headers`` (431), a body over ``max_body_bytes`` (413, on the headers when
``Content-Length`` says so), a wrong API key (401, on the headers: no body is read and no
``100 Continue`` sent), headers or a body that do not arrive in time (408), HTTP/0.9 and
malformed HTTP (400). Each of these is answered *in order* behind the requests pipelined before
it, then the connection is closed after a short linger (the rest of what the client sends is
read and dropped, so it sees the answer rather than a reset). A client that does not read its
responses stops being read from once ``write_buffer_bytes`` are unsent; at ``max_connections``
the longest-idle or slowest connection is closed to make room, or the newcomer gets a 503.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from ._app import App, InferCall
from ._errors import Reply, error_reply, plain_error
from ._stream import StreamReply, write_chunked

__all__ = ["HttpServer", "raise_fd_limit"]

log = logging.getLogger("brickwork.server")

_STATUS = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SMALL = 64 * 1024  # responses below this are joined into one write
_LINGER_S = 2.0  # after a refusal: how long to read (and drop) what the client still sends
_LINGER_BYTES = 4 * 1024 * 1024  # ... and how much of it
_FD_RESERVE = 128  # descriptors kept for files, pipes and worker processes
_IDLE, _HEAD, _BODY = 0, 1, 2  # where a connection's next request is


def _full_reply() -> bytes:
    body = b'{"error":"the server is at its connection limit (max_connections); retry shortly"}'
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


_FULL = _full_reply()


class _Stop(Exception):
    """Raised in a parser callback: stop reading this connection and answer ``reply``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "path", "reply")

    def __init__(self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes,
                 keep_alive: bool, reply: Reply | None = None) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.reply = reply  # answered without the app: a refusal, then close


class Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        config = server.app.config
        self.limit = config.max_body_bytes
        self.max_url = config.max_url_bytes
        self.max_header_bytes = config.max_header_bytes
        self.max_headers = config.max_headers
        self.loop = server.loop
        self.parser: Any = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url: list[bytes] = []
        self.url_size = 0
        self.path = "/"
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_room = 0
        self.request_headers: list[tuple[bytes, bytes]] = []
        self.keyed = server.app.config.api_key is not None
        self.chunks: list[bytes] = []
        self.size = 0
        self.waiting: deque[_Request] = deque()
        self.busy = False
        self.paused = False  # reading paused while a request is answered
        self.write_paused = False  # the client is not reading: more than write_buffer_bytes unsent
        self.drained: asyncio.Future[None] | None = None
        self.discard = False  # a refusal is queued: parse nothing more
        self.lingering = False
        self.dropped = 0
        self.eof = False  # the client shut its write side
        self.phase = _IDLE
        self.last_active = 0.0
        self.since = 0.0  # when the current phase began (idle, headers, body, linger)
        # answering this connection's requests: a task, or the engine's future (see on_message_complete)
        self.task: asyncio.Future[Any] | None = None

    # -- transport callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self.server
        if len(server.connections) >= server.max_connections and not server.evict():
            server.refused += 1
            if server.refused == 1 or server.refused % 1000 == 0:
                log.warning("at the connection limit (%d open): refused %d connection(s) with 503",
                            len(server.connections), server.refused)
            transport.write(_FULL)  # type: ignore[attr-defined]
            transport.close()
            self.parser = None
            return
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self.last_active = self.since = self.loop.time()
        server.connections.add(self)
        transport.set_write_buffer_limits(high=server.write_buffer_bytes)  # type: ignore[attr-defined]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - unix sockets
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        task = self.task
        if task is not None and not task.done():  # the client left mid-answer: track it still
            self.server.orphans.add(task)
            task.add_done_callback(self.server.orphans.discard)
        self.transport = None
        # free what this connection buffered now, not at the next full GC (the parser and this
        # protocol refer to each other)
        self.parser = None
        self.waiting.clear()
        self.chunks = []
        self.headers = self.request_headers = []
        self.url = []
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def eof_received(self) -> bool | None:
        self.eof = True
        # a request sent in full before the client shut its side is still answered
        return True if self.busy else None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.discard:  # refused: drop what the client still sends, within bounds
            self.dropped += len(data)
            if self.dropped > _LINGER_BYTES and self.transport is not None:
                self.transport.close()
            return
        self.last_active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            stop = exc.__context__
            self._refuse(stop.reply if isinstance(stop, _Stop) else error_reply(exc)[0])
        except httptools.HttpParserUpgrade:
            self._refuse(plain_error(400, "protocol upgrades (websockets, h2c) are not supported"))
        except httptools.HttpParserError as exc:
            self._refuse(plain_error(400, f"malformed HTTP request: {exc}"))

    def _refuse(self, reply: Reply) -> None:
        """Answer ``reply`` after the requests before it, then close: nothing more is parsed."""
        self.discard = True
        self.chunks = []
        self.headers = []
        self._enqueue(_Request("", "", [], b"", False, reply))

    # -- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = []
        self.url_size = 0
        self.headers = []
        self.header_room = self.max_header_bytes
        self.chunks = []
        self.size = 0
        self.phase = _HEAD
        self.since = self.last_active

    def on_url(self, url: bytes) -> None:
        self.url.append(url)
        self.url_size += len(url)
        self.header_room -= len(url)
        if self.url_size > self.max_url:
            raise _Stop(plain_error(414, f"the request target is over {self.max_url} bytes "
                                         "(max_url_bytes)"))

    def on_header(self, name: bytes, value: bytes) -> None:
        # trailers land here too, in the list on_headers_complete swapped in: counted against
        # the same room, never merged into the request's headers
        room = self.header_room - len(name) - len(value) - 4
        self.header_room = room
        headers = self.headers
        if room < 0 or len(headers) >= self.max_headers:
            raise _Stop(plain_error(431, f"the request's headers (with its trailers) are over "
                                         f"{self.max_header_bytes} bytes or {self.max_headers} lines "
                                         "(max_header_bytes, max_headers)"))
        headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.phase = _BODY
        self.since = self.last_active
        headers = self.request_headers = self.headers
        self.headers = []  # trailers, if any, go here
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Stop(plain_error(505 if version > "1.1" else 400,
                                    f"HTTP/{version} is not supported; speak HTTP/1.1 or 1.0"))
        url = self.url[0] if len(self.url) == 1 else b"".join(self.url)
        try:
            raw_path = httptools.parse_url(url).path or b"/"
        except httptools.HttpParserInvalidURLError:
            raise _Stop(plain_error(400, "malformed request target")) from None
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        self.path = path
        expect = False
        for k, v in headers:
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    continue  # httptools has already rejected a malformed length
                if length > self.limit:
                    raise _Stop(plain_error(413, f"request body is {length} bytes; this server accepts "
                                                 f"at most {self.limit} (--max-body-bytes)"))
            elif k == b"expect":
                expect = v.lower() == b"100-continue"
        if self.keyed:
            refusal = self.app.refuse_early(path, headers)
            if refusal is not None:
                raise _Stop(refusal)
        if expect and not self.busy and self.transport is not None:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            raise _Stop(plain_error(413, f"request body is over {self.limit} bytes; this server "
                                         f"accepts at most {self.limit} (--max-body-bytes)"))
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.phase = _IDLE
        parser = self.parser
        req = _Request(parser.get_method().decode("ascii", "replace"), self.path,
                       self.request_headers, body, parser.should_keep_alive())
        if self.busy:
            self._enqueue(req)
            return
        self.busy = True
        model = self.app.infer_model(req.method, req.path)
        if model is None:
            self.task = self.loop.create_task(self._serve(req))
            return
        # the hot path: an infer request answered with no task where the app can (see
        # App.infer_nowait): at once, or when the engine's future is done
        out = self.app.infer_nowait(model, req.headers, req.body)
        if isinstance(out, tuple):
            self._answered(req, out)
        elif isinstance(out, InferCall):
            self.task = out.future
            out.future.add_done_callback(lambda f: self._engine_done(req, out))
        else:
            self.task = self.loop.create_task(self._serve(req, out))

    def _engine_done(self, req: _Request, call: InferCall) -> None:
        if call.future.cancelled():  # the server's drain timed out
            self.app.infer_cancelled(call)
            return
        reply = self.app.infer_done(call, call.future)
        if isinstance(reply, tuple):
            self._answered(req, reply)
        else:  # a large answer, encoded on a helper thread
            self.task = self.loop.create_task(self._serve(req, reply))

    def _answered(self, req: _Request, reply: Reply) -> None:
        """``_serve``'s write and what follows it, for a reply made without a task."""
        if self.transport is None:
            return
        keep_alive = req.keep_alive and not self.server.draining and not (self.eof and not self.waiting)
        self._write(reply, keep_alive=keep_alive, head=False)
        if not keep_alive:
            self._close(linger=False)
        elif self.write_paused or self.waiting:
            self.task = self.loop.create_task(self._serve_next())
        else:
            self.busy = False
            self.last_active = self.since = self.loop.time()
            if self.paused:
                self.paused = False
                self.transport.resume_reading()

    def _enqueue(self, req: _Request) -> None:
        if self.busy:
            self.waiting.append(req)
            if not self.paused and self.transport is not None:
                self.transport.pause_reading()
                self.paused = True
            return
        self.busy = True
        self.task = self.loop.create_task(self._serve(req))

    # -- answering -----------------------------------------------------------------------
    async def _serve(self, req: _Request, first: Awaitable[Reply] | None = None) -> None:
        """Answer ``req`` (``first``: its reply, being made), then the requests queued behind it."""
        reply: Reply | StreamReply | None
        while True:
            reply = req.reply
            if reply is None:
                try:
                    if first is not None:
                        reply, first = await first, None
                    else:
                        model = self.app.infer_model(req.method, req.path)
                        if model is not None:  # no routing
                            reply = await self.app.infer(model, req.headers, req.body)
                        else:
                            reply = await self.app.handle(req.method, req.path, req.headers, req.body)
                except Exception as exc:  # handle() answers errors itself; this is a bug guard
                    reply = error_reply(exc)[0]
                keep_alive = (req.keep_alive and not self.server.draining
                              and not (self.eof and not self.waiting))
            else:
                keep_alive = False
            if self.transport is None:
                if isinstance(reply, StreamReply):
                    await reply.chunks.aclose()
                return
            if isinstance(reply, StreamReply):  # Server-Sent Events, chunked (see _stream.py)
                status_line = _STATUS.get(reply.status) or f"HTTP/1.1 {reply.status} Unknown\r\n".encode()
                if not await write_chunked(reply, self, status_line, keep_alive=keep_alive):
                    return
            else:
                self._write(reply, keep_alive=keep_alive, head=req.method == "HEAD")
            if not keep_alive:
                self._close(linger=req.reply is not None)
                return
            nxt = await self._next_request()
            if nxt is None:
                return
            req = nxt

    async def _serve_next(self) -> None:
        req = await self._next_request()
        if req is not None:
            await self._serve(req)

    async def _next_request(self) -> _Request | None:
        """After an answer: the next queued request to answer, or None (idle again, or gone)."""
        if self.write_paused:  # the client is not reading: wait before answering more
            self.drained = self.loop.create_future()
            await self.drained
            self.drained = None
            if self.transport is None:
                return None
        if self.transport is None:  # gone while this task was starting
            return None
        if self.waiting:
            return self.waiting.popleft()
        self.busy = False
        self.last_active = self.since = self.loop.time()
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        return None

    def _close(self, *, linger: bool) -> None:
        transport = self.transport
        assert transport is not None
        self.waiting.clear()
        if linger and not self.eof:
            # shut our side once the answer is out, and drop what the client is still sending
            # for a moment: closing at once would reset the connection under the answer
            try:
                transport.write_eof()
            except (AttributeError, NotImplementedError, OSError, RuntimeError):
                transport.close()
                return
            self.discard = self.lingering = True
            self.since = self.loop.time()
            self.busy = False
            if self.paused:
                self.paused = False
                transport.resume_reading()
            return
        transport.close()

    def _write(self, reply: Reply, *, keep_alive: bool, head: bool) -> None:
        assert self.transport is not None
        status, headers, body = reply
        parts = [_STATUS.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()]
        for k, v in headers:
            parts += (k, b": ", v, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if head:
            self.transport.write(b"".join(parts))
        elif len(body) < _SMALL:
            parts.append(body)
            self.transport.write(b"".join(parts))
        else:
            self.transport.writelines([b"".join(parts), body])

    def close_if_idle(self) -> None:
        if not self.busy and self.transport is not None:
            self.transport.close()

    def sweep(self, now: float, cfg: Any) -> None:
        """Close this connection if it has been idle, reading or lingering for too long."""
        if self.busy or self.transport is None:
            return
        age = now - self.since
        if self.lingering:
            if age > _LINGER_S:
                self.transport.close()
        elif self.phase == _IDLE:
            if age > cfg.keep_alive_s:
                self.transport.close()
        elif self.phase == _HEAD:
            if age > cfg.header_timeout_s:
                self._refuse(plain_error(408, f"the request's headers did not arrive within "
                                              f"{cfg.header_timeout_s:g} s (header_timeout_s)"))
        elif age > cfg.body_timeout_s:
            self._refuse(plain_error(408, f"the request's body did not arrive within "
                                          f"{cfg.body_timeout_s:g} s (body_timeout_s)"))


def raise_fd_limit() -> int:
    """Raise this process's soft open-file limit to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # pragma: no cover - e.g. a sandbox forbids it
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class HttpServer:
    """Runs ``app`` on an already-bound listening socket until :meth:`stop`."""

    def __init__(self, app: App, sock: socket.socket, *,
                 on_ready: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.sock = sock
        cfg = app.config
        self.write_buffer_bytes = cfg.write_buffer_bytes
        self.max_connections = cfg.max_connections
        self.on_ready = on_ready
        self.connections: set[Connection] = set()
        self.orphans: set[asyncio.Future[Any]] = set()  # answering clients that have left
        self.refused = 0
        self.draining = False
        self.started = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._stop: asyncio.Event | None = None
        self._force = False
        self._accept_logged = 0.0

    def stop(self) -> None:
        """Begin the drain (call on the server's loop; see :meth:`stop_threadsafe`). A second
        call cuts the drain short."""
        if self.draining:
            self._force = True
        self.draining = True
        self.app.draining = True
        if self._stop is not None:
            self._stop.set()

    def stop_threadsafe(self) -> None:
        if self._stop is not None and self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stop)

    def evict(self) -> bool:
        """At the connection limit: close the connection that has been idle, lingering or
        reading its request the longest (never one being answered). False: none could go."""
        victim = None
        for c in self.connections:
            if not c.busy and c.transport is not None and (victim is None or c.since < victim.since):
                victim = c
        if victim is None:
            return False
        self.connections.discard(victim)
        assert victim.transport is not None
        victim.transport.close()
        return True

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                                                      errno.ENOMEM):
            now = time.monotonic()
            if now - self._accept_logged > 10.0:  # once per 10 s, not per failed accept
                self._accept_logged = now
                log.error("accepting connections fails: %s (%d open, max_connections %d); "
                          "raise the open-file limit (ulimit -n) or lower max_connections",
                          exc, len(self.connections), self.max_connections)
            return
        loop.default_exception_handler(context)

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.draining:
            self._stop.set()
        fds = raise_fd_limit()
        if self.max_connections > fds - _FD_RESERVE:
            self.max_connections = max(16, fds - _FD_RESERVE)
            log.warning("max_connections lowered to %d: the open-file limit is %d",
                        self.max_connections, fds)
        self.loop.set_exception_handler(self._on_loop_error)
        await self.app.startup()
        server: Any = None
        sweeper = None
        try:
            server = await self.loop.create_server(lambda: Connection(self), sock=self.sock,
                                                   backlog=self.app.config.backlog)
            self.started = True
            sweeper = self.loop.create_task(self._sweep())
            if self.on_ready is not None and not self.draining:
                host, port = self.sock.getsockname()[:2]
                self.on_ready(host, port)
            await self._stop.wait()
            self.app.draining = self.draining = True
            server.close()
            await self._drain(self.app.config.drain_timeout_s)
        finally:
            if sweeper is not None:
                sweeper.cancel()
            if server is not None:
                server.close()
            # requests still being answered: only when the drain timed out (or was cut short)
            left = {c.task for c in self.connections if c.task is not None and not c.task.done()}
            left |= self.orphans
            for c in list(self.connections):
                if c.transport is not None:
                    c.transport.abort()
            for task in left:
                task.cancel()
            if left:
                await asyncio.gather(*left, return_exceptions=True)
            await self.app.shutdown()

    async def _drain(self, timeout_s: float) -> None:
        deadline = self.loop.time() + timeout_s
        while True:
            for c in list(self.connections):
                c.close_if_idle()
            if not self.connections or self._force or self.loop.time() >= deadline:
                return
            await asyncio.sleep(0.02)

    async def _sweep(self) -> None:
        cfg = self.app.config
        period = min(1.0, cfg.keep_alive_s, cfg.header_timeout_s, cfg.body_timeout_s) / 2
        ticks = 0
        while True:
            await asyncio.sleep(period)
            now = self.loop.time()
            for c in list(self.connections):
                c.sweep(now, cfg)
            ticks += 1
            if ticks % 10 == 0:
                self._check_fds()

    def _check_fds(self) -> None:
        """libuv drops connections it cannot accept for want of a descriptor without a word
        (its EMFILE trick): say so when the process is at its open-file limit."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        try:
            used = len(os.listdir("/proc/self/fd"))
        except OSError as exc:  # at the limit, listing takes the descriptor that is not there
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                return  # pragma: no cover - not Linux
            used = soft
        if soft != resource.RLIM_INFINITY and used >= soft - 8:
            self._on_loop_error(self.loop, {"exception": OSError(
                errno.EMFILE, f"{used} of {soft} open files in use: new connections are dropped")})
