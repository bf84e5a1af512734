"""Server settings: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["ServerConfig"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How ``brickwork serve`` listens and what it accepts.

    host: interface to bind. Default ``127.0.0.1`` (loopback only); ``0.0.0.0`` for all.
    port: TCP port; 0 picks a free one (printed when ready). Default 8000.
    max_body_bytes: largest request body accepted; more is answered 413 before it is read
        in full. Default 64 MiB.
    api_key: when set, every endpoint except ``/v2/health/*`` needs ``Authorization: Bearer
        <key>`` (or ``X-API-Key: <key>``), else 401. Default None (open).
    request_timeout_s: default deadline of an infer request through the whole graph, when the
        request carries none. Default None (no deadline).
    drain_timeout_s: on SIGTERM, how long in-flight requests may take to finish before the
        server stops anyway. Default 30 s.
    workers: server processes sharing the port (each loads every pipeline). Default 1.
    backlog: the listening socket's accept queue. Default 2048.
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
    api_key: str | None = None
    request_timeout_s: float | None = None
    drain_timeout_s: float = 30.0
    workers: int = 1
    backlog: int = 2048
    grpc_port: int | None = None
    access_log: bool = False
    dashboard: bool = True
    reload: bool = False
    access_log_sample: float = 1.0
    trace: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be an int in 0..65535 (0 = pick a free one), got {self.port!r}")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1:
            raise ConfigError(f"max_body_bytes must be an int >= 1, got {self.max_body_bytes!r}")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("api_key must be a non-empty string or None")
        if self.request_timeout_s is not None and not self.request_timeout_s > 0:
            raise ConfigError(f"request_timeout_s must be > 0 seconds or None, got {self.request_timeout_s!r}")
        if not self.drain_timeout_s > 0:
            raise ConfigError(f"drain_timeout_s must be > 0 seconds, got {self.drain_timeout_s!r}")
        if self.grpc_port is not None and (not isinstance(self.grpc_port, int)
                                           or not 0 <= self.grpc_port <= 65535):
            raise ConfigError(f"grpc_port must be an int in 0..65535 (0 = pick a free one) or None, "
                              f"got {self.grpc_port!r}")
        if not 0.0 <= self.access_log_sample <= 1.0:
            raise ConfigError(f"access_log_sample must be in 0..1, got {self.access_log_sample!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be an int >= 1, got {self.workers!r}")
