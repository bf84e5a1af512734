"""Running the app: the lean HTTP server (:mod:`._http`) on uvloop, on a socket we bind
ourselves (so port 0 works and the chosen port is known), graceful drain on SIGTERM, and
``workers`` processes forked after the bind to share the port. With ``grpc_port``, each process
also serves gRPC (:mod:`._grpc`) on its own SO_REUSEPORT socket of that port, which the parent
reserves first (so port 0 resolves once, for every worker).

Garbage collection: once the pipelines are loaded, a server process moves everything alive to
the collector's permanent generation (``gc.freeze()``: modules, models, the app) and collects
the young generation every 10,000 allocations instead of 700. A request allocates dozens of
containers that stay alive while it is in flight, so under load the default threshold collected
every request or two and kept promoting in-flight objects, which then triggered full
collections of the ~30,000 objects loaded at start: pauses of several ms every few seconds, the
p99 of a 2-stage pipeline. Measured on the bench's 2-stage pipeline (wrk, 32 connections, 6 s,
the shared 2-core box): 617 young, 56 middle and 5 full collections taking 352 ms in all
(35 ms a full one), against 68 young and 7 middle ones taking 30 ms and no full one. The
request path makes no reference cycles, so nothing waits longer to be freed."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import ConfigError
from ..pipeline import Pipeline
from ._app import App
from ._config import ServerConfig
from ._http import HttpServer
from ._metrics import SharedMetrics

__all__ = ["bind", "reserve_port", "serve", "serve_app"]

ReadyCallback = Callable[[str, int], None]
GC_GEN0_THRESHOLD = 10_000


def settle_gc() -> None:
    """Freeze what is alive now and collect the young generation less often (see above)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _bound(host: str, port: int, option: int, what: str) -> socket.socket:
    """A TCP socket with ``option`` set, bound to ``host:port`` (IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, option, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen{what} on {host}:{port}: {exc.strerror}") from exc
    return sock


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    sock = _bound(host, port, socket.SO_REUSEADDR, "")
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) a SO_REUSEPORT socket on ``host:port``: the port is ours and known (0
    resolves here), and gRPC servers with SO_REUSEPORT can still listen on it, one per worker.
    A socket that does not listen takes no connections."""
    return _bound(host, port, socket.SO_REUSEPORT, " for gRPC")


def _pipelines(items: Any) -> list[Pipeline]:
    if isinstance(items, Pipeline | str | Path):
        items = [items]
    out: list[Pipeline] = []
    for item in items:
        if isinstance(item, str | Path):
            from ..graph import load_pipeline

            path = item
            item = load_pipeline(item)
            item.source = Path(path)  # what a reload compiles again
        elif not isinstance(item, Pipeline) and hasattr(item, "compile"):
            item = item.compile()
        if not isinstance(item, Pipeline):
            raise ConfigError(f"cannot serve {item!r}: give a Pipeline, a Graph or a pipeline file")
        out.append(item)
    if not out:
        raise ConfigError("nothing to serve: give at least one pipeline")
    return out


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is in the server extra
        return asyncio.new_event_loop


async def serve_app(server: HttpServer, front: Any = None, on_grpc_ready: ReadyCallback | None = None,
                    shared: SharedMetrics | None = None) -> None:
    """Run ``server`` and, when given, the gRPC front (a :class:`._grpc.GrpcServer` on the same
    app) until the server stops. gRPC starts first and answers UNAVAILABLE until the pipelines
    have started; the app's shutdown drains it before the pipelines close. With ``shared``
    (several workers), this worker's stage figures are published for the others' scrapes."""
    app = server.app
    publisher = None
    if shared is not None:
        publisher = asyncio.get_running_loop().create_task(shared.publish(
            lambda: {n: m.pipeline.stats() for n, m in app.models.items()} if app.ready else {}))
    try:
        if front is not None:
            await front.start()
            if on_grpc_ready is not None:
                on_grpc_ready(front.host, front.port)
        await server.serve()
    finally:
        if publisher is not None:
            publisher.cancel()


def grpc_front(app: App, port: int | None) -> Any:
    if port is None:
        return None
    try:
        from ._grpc import GrpcServer
    except ImportError as exc:
        raise ConfigError(f"gRPC needs the grpc extra (pip install 'brickwork[grpc]'): {exc}") from exc
    return GrpcServer(app, app.config.host, port)


def _run_one(pipelines: list[Pipeline], config: ServerConfig, sock: socket.socket,
             on_ready: ReadyCallback | None, on_grpc_ready: ReadyCallback | None = None,
             metrics_dir: tuple[str, int] | None = None) -> None:
    """Serve on this thread until SIGINT/SIGTERM (a second one cuts the drain short).
    ``metrics_dir``: (the workers' metrics directory, this worker's index)."""
    import threading

    app = App(pipelines, config)
    shared = None
    if metrics_dir is not None:
        shared = SharedMetrics(metrics_dir[0], metrics_dir[1], list(app.models))
        for name, model in app.models.items():
            model.metrics = shared.metrics[name]
    main = threading.current_thread() is threading.main_thread()

    def ready(host: str, port: int) -> None:
        if main:  # a server process of its own (not a test server thread inside another app)
            settle_gc()
        if on_ready is not None:
            on_ready(host, port)

    if config.http == "uvicorn":
        from ._uvicorn import run_uvicorn

        background = None
        if shared is not None:
            publisher = shared

            def background() -> Any:
                return publisher.publish(
                    lambda: {n: m.pipeline.stats() for n, m in app.models.items()} if app.ready else {})

        run_uvicorn(app, config, sock, ready, background=background)
        return
    server = HttpServer(app, sock, on_ready=ready)
    front = grpc_front(app, config.grpc_port)

    def stop() -> None:
        server.stop()
        if front is not None:
            front.begin_stop()

    loop = _loop_factory()()
    try:
        asyncio.set_event_loop(loop)
        if main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop)
        loop.run_until_complete(serve_app(server, front, on_grpc_ready, shared))
    finally:
        if main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        loop.close()


def serve(pipelines: Any, *, host: str = "127.0.0.1", port: int = 8000,
          config: ServerConfig | None = None, on_ready: ReadyCallback | None = None,
          on_grpc_ready: ReadyCallback | None = None, **options: Any) -> None:
    """Serve one or more pipelines (``Pipeline``, ``Graph`` or pipeline-file path) over the
    Open Inference Protocol v2 until SIGINT/SIGTERM; blocks. ``options`` are
    :class:`ServerConfig` fields. ``on_ready(host, port)`` is called once the server answers;
    with ``grpc_port``, ``on_grpc_ready(host, grpc_port)`` before it, once gRPC listens."""
    cfg = config or ServerConfig(host=host, port=port, **options)
    items = _pipelines(pipelines)
    if cfg.workers > 1:  # no framework runtime may live across the fork (see Pipeline.release)
        for pipeline in items:
            pipeline.release()
    sock = bind(cfg.host, cfg.port, cfg.backlog)
    reserved = None
    try:
        if cfg.grpc_port is not None:
            reserved = reserve_port(cfg.host, cfg.grpc_port)
            cfg = dataclasses.replace(cfg, grpc_port=reserved.getsockname()[1])
        if cfg.workers == 1:
            _run_one(items, cfg, sock, on_ready, on_grpc_ready)
        else:
            _run_workers(items, cfg, sock, on_ready, on_grpc_ready)
    finally:
        sock.close()
        if reserved is not None:
            reserved.close()


def _run_workers(items: list[Pipeline], cfg: ServerConfig, sock: socket.socket,
                 on_ready: ReadyCallback | None, on_grpc_ready: ReadyCallback | None) -> None:
    """Fork ``cfg.workers`` processes after the bind (nothing has started a thread or a loop
    yet); forward SIGINT/SIGTERM to them by PID and wait. The workers' metrics live in a
    directory made here and removed when they have all exited."""
    metrics_dir = tempfile.mkdtemp(prefix="brickwork-metrics-")
    try:
        _fork_workers(items, cfg, sock, on_ready, on_grpc_ready, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _fork_workers(items: list[Pipeline], cfg: ServerConfig, sock: socket.socket,
                  on_ready: ReadyCallback | None, on_grpc_ready: ReadyCallback | None,
                  metrics_dir: str) -> None:
    pids: list[int] = []
    for i in range(cfg.workers):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                _run_one(items, cfg, sock, on_ready if i == 0 else None,
                         on_grpc_ready if i == 0 else None, (metrics_dir, i))
            except BaseException as exc:
                print(f"error: worker {i}: {exc}", file=sys.stderr, flush=True)
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    # The workers hold the listening socket now. Were the parent to keep its copy open, the
    # kernel would go on accepting connections into the backlog after the workers closed
    # theirs on SIGTERM, and reset them at exit instead of refusing them.
    sock.close()

    def forward(sig: int, frame: FrameType | None) -> None:
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    restore = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    failed = 0
    try:
        for p in pids:
            while True:
                try:
                    _, status = os.waitpid(p, 0)
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                    continue
            if os.waitstatus_to_exitcode(status) != 0:
                failed += 1
                forward(signal.SIGTERM, None)
    finally:
        for s, h in restore.items():
            signal.signal(s, h)
    if failed:
        raise ConfigError(f"{failed} of {cfg.workers} server workers exited with an error")
