"""The alternative HTTP front: the same ASGI :class:`App` under uvicorn (``--http uvicorn``).

Slower than the native front (uvicorn + ASGI cost ~20 µs more server CPU per request) but
uvicorn's own: TLS (``ssl_keyfile``/``ssl_certfile``), its h11 protocol and its limits. Mapped
from :class:`ServerConfig`: ``max_connections`` + 1 → ``limit_concurrency`` (uvicorn counts the
asking connection itself; 503 past it, requests in flight counted too), ``keep_alive_s`` →
``timeout_keep_alive``, ``drain_timeout_s`` → ``timeout_graceful_shutdown``,
``max_header_bytes`` → ``h11_max_incomplete_event_size`` (past it uvicorn answers 400, not
431), ``backlog``. What uvicorn does not have: header and body read deadlines (408), a URL
limit (414), answering a client that shut its write side, eviction of idle connections at the
cap; docs/serving.md lists them.
"""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ._app import App
from ._config import ServerConfig

__all__ = ["run_uvicorn"]


def run_uvicorn(app: App, cfg: ServerConfig, sock: socket.socket,
                on_ready: Callable[[str, int], None] | None,
                background: Callable[[], Awaitable[Any]] | None = None) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until SIGINT/SIGTERM (uvicorn's handlers drain).
    ``background()``, when given, runs on the server's loop meanwhile (the workers' metrics
    publisher)."""
    import uvicorn

    from ._http import raise_fd_limit

    raise_fd_limit()
    config = uvicorn.Config(
        app, loop="uvloop", http="h11", lifespan="on", log_level="warning", access_log=False,
        server_header=False, date_header=False, proxy_headers=False,
        limit_concurrency=cfg.max_connections + 1, backlog=cfg.backlog,
        timeout_keep_alive=max(1, math.ceil(cfg.keep_alive_s)),
        timeout_graceful_shutdown=max(1, math.ceil(cfg.drain_timeout_s)),
        h11_max_incomplete_event_size=cfg.max_header_bytes,
        ssl_keyfile=cfg.ssl_keyfile, ssl_certfile=cfg.ssl_certfile)
    server = uvicorn.Server(config)

    async def main() -> None:
        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.01)
            if on_ready is not None:
                host, port = sock.getsockname()[:2]
                on_ready(host, port)
            while not server.should_exit:  # SIGTERM: readiness answers 503 while uvicorn drains
                await asyncio.sleep(0.05)
            app.draining = True

        tasks: list[Any] = [asyncio.ensure_future(announce())]
        if background is not None:
            tasks.append(asyncio.ensure_future(background()))
        try:
            await server.serve(sockets=[sock])
        finally:
            for task in tasks:
                task.cancel()
        if not server.started:
            from ..errors import ConfigError

            raise ConfigError("the server did not start (see the log above)")

    import uvloop

    # uvicorn re-raises the signal that stopped it once it has drained; with these in place
    # that lands here (the drain is done) instead of killing the process with the signal
    main_thread = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.signal(sig, _drained) for sig in _SIGNALS} if main_thread else {}
    try:
        uvloop.run(main())
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _drained(sig: int, frame: Any) -> None:
    pass
