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
                   help="require 'Authorization: Bearer KEY' (default: $BRICKWORK_API_KEY, else open)")
    p.add_argument("--timeout-s", type=float, default=None,
                   help="default deadline of a request through the graph, seconds (default: none)")
    p.add_argument("--drain-timeout-s", type=float, default=30.0,
                   help="on SIGTERM, how long in-flight requests may take (default: 30)")
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


def run(args: argparse.Namespace) -> int:
    from ..graph import load_pipeline
    from ..server import ServerConfig, configure_logging, serve

    configure_logging(level=args.log_level, fmt=args.log_format)
    config = ServerConfig(
        host=args.host, port=args.port, workers=args.workers, max_body_bytes=args.max_body_bytes,
        api_key=args.api_key or os.environ.get("BRICKWORK_API_KEY") or None,
        request_timeout_s=args.timeout_s, drain_timeout_s=args.drain_timeout_s,
        grpc_port=args.grpc_port, access_log=args.access_log, dashboard=not args.no_dashboard,
        access_log_sample=args.access_log_sample, trace=args.trace, reload=args.reload,
    )
    pipelines = [load_pipeline(f, backend=backend_of(args)) for f in args.files]
    for f, pipeline in zip(args.files, pipelines, strict=True):  # what a reload compiles again
        pipeline.source, pipeline.source_backend = Path(f), backend_of(args)
    names = ", ".join(repr(p.name) for p in pipelines)

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"brickwork: serving {names} on http://{shown}:{port}", flush=True)
        if config.dashboard:
            print(f"brickwork: dashboard on http://{shown}:{port}/dashboard", flush=True)

    def grpc_ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"brickwork: gRPC on {shown}:{port}", flush=True)

    serve(pipelines, config=config, on_ready=ready, on_grpc_ready=grpc_ready)
    logging.getLogger("brickwork.server").info("stopped")
    return 0
