"""``brickwork serve FILE...``: serve pipelines over the Open Inference Protocol v2."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ._backend import add_backend_args, backend_of

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve pipelines over the Open Inference Protocol v2 (KServe/Triton)",
        description="Serve one or more pipeline files, each as a model named after the file's "
                    "top-level 'name', over HTTP (Open Inference Protocol v2, JSON and binary "
                    "tensors). SIGTERM drains in-flight requests, then exits.")
    p.add_argument("files", nargs="+", metavar="FILE", help="pipeline YAML file(s)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000,
                   help="TCP port; 0 picks a free one and prints it (default: 8000)")
    add_backend_args(p)
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port, each with its own copy of every "
                        "pipeline (default: 1)")
    p.add_argument("--grpc-port", type=int, default=None,
                   help="also serve the v2 gRPC service (inference.GRPCInferenceService, as "
                        "tritonclient[grpc] calls it) on this port; 0 picks a free one "
                        "(default: no gRPC; needs the grpc extra)")
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024,
                   help="largest request body (and gRPC message) accepted, else 413 / "
                        "RESOURCE_EXHAUSTED (default: 64 MiB)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY'; visible to every user in ps, so prefer "
                        "$BRICKWORK_API_KEY or --api-key-file (default: $BRICKWORK_API_KEY, else open)")
    p.add_argument("--api-key-file", default=None, metavar="PATH",
                   help="read the API key from this file (its first line)")
    p.add_argument("--timeout-s", type=float, default=None,
                   help="default deadline of a request through the graph, seconds (default: none)")
    p.add_argument("--drain-timeout-s", type=float, default=30.0,
                   help="on SIGTERM, how long in-flight requests may take (default: 30)")
    p.add_argument("--http", default="native", choices=("native", "uvicorn"),
                   help="the HTTP front: native (brickwork's own, fastest) or uvicorn (TLS; "
                        "see docs/serving.md for what each limits) (default: native)")
    p.add_argument("--max-response-bytes", type=int, default=256 * 1024 * 1024,
                   help="largest response body, else 413 (default: 256 MiB)")
    p.add_argument("--max-connections", type=int, default=4096,
                   help="open connections at once; then the longest-idle is closed for a new "
                        "one, or the new one gets 503 (default: 4096, lowered to the fd limit)")
    p.add_argument("--keep-alive-s", type=float, default=30.0,
                   help="close a keep-alive connection idle this long (default: 30)")
    p.add_argument("--header-timeout-s", type=float, default=10.0,
                   help="a request's headers must arrive within this, else 408 (default: 10)")
    p.add_argument("--body-timeout-s", type=float, default=60.0,
                   help="a request's body must arrive within this of its headers, else 408 (default: 60)")
    p.add_argument("--max-url-bytes", type=int, default=8 * 1024,
                   help="longest request target, else 414 (default: 8 KiB)")
    p.add_argument("--max-header-bytes", type=int, default=32 * 1024,
                   help="request line and headers together, else 431 (default: 32 KiB)")
    p.add_argument("--max-headers", type=int, default=100,
                   help="header lines per request, else 431 (default: 100)")
    p.add_argument("--write-buffer-bytes", type=int, default=4 * 1024 * 1024,
                   help="unsent response bytes on a connection before it is no longer read "
                        "from (default: 4 MiB)")
    p.add_argument("--ssl-keyfile", default=None, metavar="PATH", help="TLS key (PEM; --http uvicorn)")
    p.add_argument("--ssl-certfile", default=None, metavar="PATH",
                   help="TLS certificate (PEM; --http uvicorn)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="brickwork's log level; logs go to stderr (default: info)")
    p.add_argument("--log-format", default="text", choices=("text", "json"),
                   help="log lines as text or one JSON object per line (default: text)")
    p.add_argument("--access-log", action="store_true",
                   help="one log line per infer request: method, path, model, status, latency, "
                        "request id, rungs (default: off; 5xx answers, worker deaths and breaker "
                        "transitions are logged either way)")
    p.add_argument("--access-log-sample", type=float, default=1.0, metavar="RATE",
                   help="with --access-log: log this fraction of successful requests, 0..1; errors "
                        "are always logged (default: 1)")
    p.add_argument("--trace", action="store_true",
                   help="OpenTelemetry spans per request and stage batch, traceparent in and out; "
                        "exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (needs the otel extra)")
    p.add_argument("--reload", action="store_true",
                   help="reload a pipeline when its file changes, without dropping a request (a "
                        "file that fails to compile leaves the old one serving; default: off)")
    p.add_argument("--no-dashboard", action="store_true",
                   help="do not serve the live dashboard at /dashboard (default: served, behind "
                        "--api-key like every route)")
    p.set_defaults(func=run)


def _api_key(args: argparse.Namespace) -> str | None:
    from ..errors import ConfigError

    if args.api_key_file is not None:
        try:
            with open(args.api_key_file, encoding="utf-8") as f:
                key = f.readline().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --api-key-file {args.api_key_file}: {exc.strerror}") from None
        if not key:
            raise ConfigError(f"--api-key-file {args.api_key_file} is empty")
        return key
    return args.api_key or os.environ.get("BRICKWORK_API_KEY") or None


def run(args: argparse.Namespace) -> int:
    from ..graph import load_pipeline
    from ..server import ServerConfig, configure_logging, serve

    configure_logging(level=args.log_level, fmt=args.log_format)
    config = ServerConfig(
        host=args.host, port=args.port, workers=args.workers, max_body_bytes=args.max_body_bytes,
        api_key=_api_key(args), request_timeout_s=args.timeout_s,
        drain_timeout_s=args.drain_timeout_s, http=args.http,
        max_response_bytes=args.max_response_bytes, max_connections=args.max_connections,
        keep_alive_s=args.keep_alive_s, header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s, max_url_bytes=args.max_url_bytes,
        max_header_bytes=args.max_header_bytes, max_headers=args.max_headers,
        write_buffer_bytes=args.write_buffer_bytes, ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
        grpc_port=args.grpc_port, access_log=args.access_log, dashboard=not args.no_dashboard,
        access_log_sample=args.access_log_sample, trace=args.trace, reload=args.reload,
    )
    pipelines = [load_pipeline(f, backend=backend_of(args)) for f in args.files]
    for f, pipeline in zip(args.files, pipelines, strict=True):  # what a reload compiles again
        pipeline.source, pipeline.source_backend = Path(f), backend_of(args)
    names = ", ".join(repr(p.name) for p in pipelines)

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if config.ssl_certfile else "http"
        print(f"brickwork: serving {names} on {scheme}://{shown}:{port}", flush=True)
        if config.dashboard:
            print(f"brickwork: dashboard on {scheme}://{shown}:{port}/dashboard", flush=True)

    def grpc_ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"brickwork: gRPC on {shown}:{port}", flush=True)

    serve(pipelines, config=config, on_ready=ready, on_grpc_ready=grpc_ready)
    logging.getLogger("brickwork.server").info("stopped")
    return 0
