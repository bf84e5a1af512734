"""A real server on a free loopback port, in a background thread, for tests:

    with ServerThread(pipeline) as server:
        Client(server.url).infer("name", {"x": x})

The server runs its own event loop in the thread (uvloop, the same HTTP server and app as
``brickwork serve``); ``start()`` returns once it answers, and raises if it failed to start.
"""

from __future__ import annotations

import threading
from typing import Any

from ._app import App
from ._config import ServerConfig
from ._http import HttpServer
from ._run import _loop_factory, _pipelines, bind, grpc_front, reserve_port, serve_app

__all__ = ["ServerThread"]


class ServerThread:
    def __init__(self, pipelines: Any, *, start_timeout_s: float = 60.0, **options: Any) -> None:
        options.setdefault("port", 0)
        self.config = ServerConfig(**options)
        self.app = App(_pipelines(pipelines), self.config)
        self._start_timeout_s = start_timeout_s
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._front: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.host = self.config.host
        self.port = 0
        self.grpc_port: int | None = None  # with the grpc_port option: the port gRPC listens on

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC front (as tritonclient.grpc takes it)."""
        return f"{self.host}:{self.grpc_port}"

    def start(self) -> ServerThread:
        if self._thread is not None:  # already running
            return self
        sock = bind(self.config.host, self.config.port, self.config.backlog)
        self.port = sock.getsockname()[1]
        self._server = HttpServer(self.app, sock, on_ready=lambda h, p: self._ready.set())
        reserved = front = None
        if self.config.grpc_port is not None:
            reserved = reserve_port(self.config.host, self.config.grpc_port)
            self.grpc_port = reserved.getsockname()[1]
            front = grpc_front(self.app, self.grpc_port)
        self._front = front

        def run() -> None:
            loop = _loop_factory()()
            try:
                loop.run_until_complete(serve_app(self._server, front))
            except BaseException as exc:
                self._error = exc
            finally:
                loop.close()
                sock.close()
                if reserved is not None:
                    reserved.close()
                self._ready.set()

        self._thread = threading.Thread(target=run, name="bw-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout_s):
            self.stop()
            raise TimeoutError(f"server not ready after {self._start_timeout_s} s")
        if self._error is not None or not self._server.started:
            self.stop()
            raise RuntimeError(f"server failed to start: {self._error!r}")
        return self

    def stop(self) -> None:
        """Drain and stop (like SIGTERM), then join the thread."""
        if self._server is not None:
            self._server.stop_threadsafe()
            if self._front is not None and self._server.loop is not None and not self._server.loop.is_closed():
                self._server.loop.call_soon_threadsafe(self._front.begin_stop)
        if self._thread is not None:
            self._thread.join(timeout=self.config.drain_timeout_s + 5)
            self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(pipelines: Any, **options: Any) -> ServerThread:
    """Start a :class:`ServerThread` (port 0 unless given) and return it, ready; stop it with
    ``.stop()`` or use it as a context manager."""
    return ServerThread(pipelines, **options).start()
