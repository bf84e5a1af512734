"""Server settings: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["ServerConfig"]

FRONTS = ("native", "uvicorn")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How ``brickwork serve`` listens and what it accepts. Every limit's status and default is
    listed in docs/serving.md ("Limits").

    host: interface to bind. Default ``127.0.0.1`` (loopback only); ``0.0.0.0`` for all.
    port: TCP port; 0 picks a free one (printed when ready). Default 8000.
    max_body_bytes: largest request body accepted (also after decompression); more is answered
        413 on the headers (``Content-Length``) or as soon as the count passes it. Default 64 MiB.
    max_response_bytes: largest response body; a bigger answer is a 413 naming the limit.
        Default 256 MiB.
    api_key: when set, every endpoint except ``/v2/health/*`` needs ``Authorization: Bearer
        <key>`` (or ``X-API-Key: <key>``), else 401, checked on the headers before any body is
        read. Default None (open).
    request_timeout_s: default deadline of an infer request through the whole graph, when the
        request carries none. Default None (no deadline).
    drain_timeout_s: on SIGTERM, how long in-flight requests may take to finish before the
        server stops anyway. Default 30 s.
    workers: server processes sharing the port (each loads every pipeline). Default 1.
    backlog: the listening socket's accept queue. Default 2048.
    http: the HTTP front: ``"native"`` (brickwork's own HTTP/1.1 server, the fast one) or
        ``"uvicorn"`` (the same app under uvicorn, e.g. for TLS). Default ``"native"``.
    max_connections: open connections at once; at the cap the longest-idle (or slowest-reading)
        connection is closed for a new one, or the new one gets 503. Lowered at start to what
        the process's file-descriptor limit allows. Default 4096.
    keep_alive_s: an idle keep-alive connection is closed after this long. Default 30 s.
    header_timeout_s: a request's line and headers must arrive within this long, else 408.
        Default 10 s.
    body_timeout_s: a request's whole body must arrive within this long of its headers, else
        408. Default 60 s.
    max_url_bytes: longest request target (path and query), else 414. Default 8 KiB.
    max_header_bytes: request line, headers and trailers together, else 431. Default 32 KiB.
    max_headers: header (and trailer) lines per request, else 431. Default 100.
    write_buffer_bytes: unsent response bytes on one connection above which the server stops
        reading that connection's further requests until the client reads. Default 4 MiB.
    ssl_keyfile, ssl_certfile: TLS key and certificate (PEM), ``http="uvicorn"`` only. Default
        None (plain HTTP).
    grpc_port: also serve the v2 gRPC service (``inference.GRPCInferenceService``) on this TCP
        port, same host; 0 picks a free one. Needs the ``grpc`` extra. Default None (no gRPC).
    access_log: one log line per infer request on the ``brickwork.access`` logger (method,
        path, model, status, latency, request id, rungs). Default False (5xx answers, worker
        deaths and breaker transitions are logged either way); see docs/serving.md#logs.
    access_log_sample: the fraction of successful (< 400) infer requests the access log writes,
        0..1; errors are always written. Default 1.0 (every request).
    trace: OpenTelemetry tracing (the ``otel`` extra): a span per request and per stage batch,
        W3C ``traceparent`` in and out, OTLP export when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
        (see docs/dashboard.md#tracing). Default False.
    reload: watch the served pipeline files and reload a model whose file changed (compiled
        and warmed beside the old, switched atomically, the old drained; a file that fails
        leaves the old serving). Default False. ``POST /v2/repository/models/{m}/load`` does the
        same on demand.
    dashboard: answer ``/dashboard`` (the live page, behind ``api_key`` like the rest; see
        docs/dashboard.md). Default True.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 64 * 1024 * 1024
    max_response_bytes: int = 256 * 1024 * 1024
    api_key: str | None = None
    request_timeout_s: float | None = None
    drain_timeout_s: float = 30.0
    workers: int = 1
    backlog: int = 2048
    http: str = "native"
    max_connections: int = 4096
    keep_alive_s: float = 30.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    write_buffer_bytes: int = 4 * 1024 * 1024
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    grpc_port: int | None = None
    access_log: bool = False
    dashboard: bool = True
    reload: bool = False
    access_log_sample: float = 1.0
    trace: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be an int in 0..65535 (0 = pick a free one), got {self.port!r}")
        for name in ("max_body_bytes", "max_response_bytes", "max_connections", "max_url_bytes",
                     "max_header_bytes", "max_headers", "write_buffer_bytes", "backlog"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("api_key must be a non-empty string or None")
        if self.request_timeout_s is not None and not self.request_timeout_s > 0:
            raise ConfigError(f"request_timeout_s must be > 0 seconds or None, got {self.request_timeout_s!r}")
        for name in ("drain_timeout_s", "keep_alive_s", "header_timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {value!r}")
        if self.grpc_port is not None and (not isinstance(self.grpc_port, int)
                                           or not 0 <= self.grpc_port <= 65535):
            raise ConfigError(f"grpc_port must be an int in 0..65535 (0 = pick a free one) or None, "
                              f"got {self.grpc_port!r}")
        if not 0.0 <= self.access_log_sample <= 1.0:
            raise ConfigError(f"access_log_sample must be in 0..1, got {self.access_log_sample!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be an int >= 1, got {self.workers!r}")
        if self.http not in FRONTS:
            raise ConfigError(f"http must be one of {', '.join(FRONTS)}, got {self.http!r}")
        if (self.ssl_keyfile is None) != (self.ssl_certfile is None):
            raise ConfigError("TLS needs both ssl_keyfile and ssl_certfile")
        if self.grpc_port is not None and self.http != "native":
            raise ConfigError("the gRPC front (grpc_port) runs beside the native HTTP front only; "
                              "drop --http uvicorn or --grpc-port")
        if self.ssl_keyfile is not None and self.http != "uvicorn":
            raise ConfigError("TLS (ssl_keyfile/ssl_certfile) is served by the uvicorn front: "
                              "add --http uvicorn, or terminate TLS in a proxy")
