"""OpenTelemetry tracing (the ``otel`` extra), off unless :func:`enable` is called.

When on:

- a served infer request is a span ``infer MODEL`` (kind SERVER), the child of the W3C
  ``traceparent`` it came with, if any;
- each batch a stage runs is a span ``stage NAME`` whose parent is the first request in it and
  which **links** to every request in it (attributes: stage, rows, requests, replica kind);
- a remote brick (``v2:`` or ``http:``) sends the running batch span as ``traceparent``, so the
  upstream ``brickwork serve`` continues the same trace.

When off (the default) the hot path pays one test of a module global (``TRACER is None``) per
request and per batch; nothing from OpenTelemetry is imported.

``enable()`` with no provider builds one from the environment: ``OTEL_SERVICE_NAME`` (default
``brickwork``) and, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set, an
OTLP/HTTP exporter (``opentelemetry-exporter-otlp-proto-http``) in a batch processor;
``OTEL_TRACES_EXPORTER=console`` writes each span as JSON to stderr instead (``none``: no export). ``brickwork
serve --trace`` calls it. Tests pass their own provider (the SDK's in-memory exporter).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["TRACER", "batch_span", "current", "detach", "disable", "enable", "end_batch", "in_context",
           "outgoing", "server_span"]

TRACER: Any = None  # an opentelemetry Tracer while tracing is on, else None


def enable(provider: Any = None) -> None:
    """Turn tracing on with ``provider`` (an SDK ``TracerProvider``), else one built from the
    environment (see the module's doc)."""
    global TRACER
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ConfigError("tracing needs OpenTelemetry: pip install 'brickwork[otel]'") from exc
    if provider is None:
        provider = _provider_from_env()
    from . import __version__

    TRACER = trace.get_tracer("brickwork", __version__, tracer_provider=provider)


def disable() -> None:
    global TRACER
    TRACER = None


def _provider_from_env() -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "brickwork")}))
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "console":  # each span as JSON on stderr, as it ends (for a look, or a test)
        import sys

        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    elif exporter not in ("", "otlp", "none"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: brickwork knows otlp, console and none")
    if exporter != "none" and (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                               or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
                              "pip install opentelemetry-exporter-otlp-proto-http") from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def current() -> Any:
    """The OpenTelemetry context now (what a request carries into the stages' queues)."""
    from opentelemetry import context

    return context.get_current()


def server_span(name: str, headers: Iterable[tuple[bytes, bytes]]) -> Any:
    """A context manager: the SERVER span of one request, child of its ``traceparent``."""
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers
               if k in (b"traceparent", b"tracestate", b"baggage")}
    return TRACER.start_as_current_span(name, context=extract(carrier) if carrier else None,
                                        kind=trace.SpanKind.SERVER)


def batch_span(stage: str, contexts: list[Any], rows: int, kind: str) -> tuple[Any, Any]:
    """Start the span of one stage batch (parent: the first request's context; links: every
    request's span) and make it current; returns (span, token) for :func:`end_batch`."""
    from opentelemetry import context, trace

    links, parent = [], None
    for ctx in contexts:
        if ctx is None:
            continue
        sc = trace.get_current_span(ctx).get_span_context()
        if sc.is_valid:
            links.append(trace.Link(sc))
            if parent is None:
                parent = ctx
    span = TRACER.start_span(f"stage {stage}", context=parent, links=links, attributes={
        "brickwork.stage": stage, "brickwork.rows": rows, "brickwork.requests": len(contexts),
        "brickwork.replica": kind})
    token = context.attach(trace.set_span_in_context(span))
    return span, token


def detach(token: Any) -> None:
    from opentelemetry import context

    context.detach(token)


def end_batch(span: Any, error: BaseException | None) -> None:
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


def in_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` bound to the current context (for a worker thread: the running batch span)."""
    import contextvars

    ctx = contextvars.copy_context()
    return lambda *a: ctx.run(fn, *a)


def outgoing() -> Mapping[str, str]:
    """Headers that carry the current span to an upstream server (empty when tracing is off)."""
    if TRACER is None:
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier
