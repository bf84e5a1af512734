"""What a served pipeline writes to its log, and how ``brickwork serve`` sets logging up.

Loggers (standard :mod:`logging`, so any handler works):

    brickwork.access     one line per infer request (off unless ``--access-log``):
                         method, path, model, status, latency, request id, rungs
    brickwork.server     one line per 5xx answer with its cause (always on; ERROR for 500,
                         WARNING for 502/503/504; at most ``ERRORS_PER_S`` lines a second, the
                         rest counted in the next line)
    brickwork.engine     worker deaths and replacements, circuit breaker transitions

``configure(level=..., fmt="text" | "json")`` is what ``--log-level``/``--log-format`` call;
nothing here runs on import. With ``fmt="json"`` every line is one JSON object with ``ts``,
``level``, ``logger``, ``msg`` and the line's fields (``status``, ``model``, ``latency_ms``, ...).

Cost: where ``configure`` installed its handler, the access log formats its line itself and
queues it on that handler, which writes the queued lines together at most ``flush_s`` later (and
before any other record, which is written at once): a request pays a string format and a list
append, ~4 µs, where a ``logging`` record with a flush per line cost ~20 µs (bench/README.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import orjson

__all__ = ["ERRORS_PER_S", "AccessLog", "BufferedHandler", "JsonFormatter", "configure", "log_error"]

access_log = logging.getLogger("brickwork.access")
server_log = logging.getLogger("brickwork.server")

ERRORS_PER_S = 50
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, msg, then the record's
    extra fields; ``exc`` holds a traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class BufferedHandler(logging.StreamHandler):
    """A stream handler for ``brickwork serve``: log records are written at once (warnings and
    errors must not wait), while access lines (:meth:`add_line`, already formatted) are
    collected and written together at most ``flush_s`` later, in one write call: a request
    pays for a string format and a list append, not a logging record and a write syscall."""

    def __init__(self, stream: IO[str] | None = None, *, flush_s: float = 0.5) -> None:
        super().__init__(stream)
        self.flush_s = flush_s
        self.json = False
        self._lines: list[str] = []
        self._first = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        super().setFormatter(fmt)
        self.json = isinstance(fmt, JsonFormatter)

    def add_line(self, line: str) -> None:
        """Queue one formatted line; it is written within ``flush_s`` (a timer on the running
        event loop; off a loop, with the first line after ``flush_s``), or with the next record."""
        with self.lock:  # type: ignore[union-attr]
            lines = self._lines
            lines.append(line)
            if len(lines) == 1:
                self._first = time.monotonic()
                try:
                    self._timer = asyncio.get_running_loop().call_later(self.flush_s, self.flush)
                except RuntimeError:  # not on an event loop
                    pass
            if len(lines) >= 4096 or (self._timer is None and time.monotonic() - self._first >= self.flush_s):
                self._write_lines()

    def _write_lines(self) -> None:
        if self._lines:
            self._lines.append("")
            self.stream.write("\n".join(self._lines))
            self._lines = []
        self._timer = None  # a pending timer just flushes nothing (not cancelled: any thread may be here)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_lines()
        super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_lines()  # keep the order of lines
        super().emit(record)


def configure(*, level: str = "info", fmt: str = "text", stream: IO[str] | None = None,
              flush_s: float = 0.5) -> logging.Handler:
    """Send brickwork's logs (at ``level``) and everyone else's warnings to ``stream``
    (stderr), as text or JSON lines. Replaces handlers an earlier call installed."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"log level must be debug, info, warning or error, got {level!r}")
    handler = BufferedHandler(stream or sys.stderr, flush_s=flush_s)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, BufferedHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("brickwork").setLevel(number)
    return handler


class AccessLog:
    """The access log of one server: :meth:`infer` writes one line per infer request. Where
    :func:`configure` set logging up (``brickwork serve``), the line is formatted here and
    handed to its :class:`BufferedHandler` (about 2 µs); elsewhere it is an ordinary
    ``logging`` record on ``brickwork.access`` for whatever handlers the application has."""

    __slots__ = ("_handler", "_iso", "_second", "_stamp", "sample")

    def __init__(self, *, sample: float = 1.0) -> None:
        self.sample = sample  # the fraction of successful requests logged; errors always are
        root = logging.getLogger()
        self._handler = next((h for h in root.handlers if isinstance(h, BufferedHandler)), None)
        self._second = -1
        self._stamp = self._iso = ""

    def infer(self, method: str, path: str, model: str, status: int, latency_s: float,
              request_id: str | None, rungs: Mapping[str, str] | None) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        if self.sample < 1.0 and status < 400 and random.random() >= self.sample:
            return
        ms = round(latency_s * 1000.0, 3)
        handler = self._handler
        if handler is None or not access_log.propagate or access_log.handlers:
            shown = ",".join(f"{k}={v}" for k, v in rungs.items()) if rungs else "-"
            access_log.info("%s %s %d %.3fms model=%s id=%s rungs=%s", method, path, status, ms, model,
                            request_id or "-", shown,
                            extra={"method": method, "path": path, "status": status, "model": model,
                                   "latency_ms": ms, "request_id": request_id, "rungs": dict(rungs or {}),
                                   **_trace_id()})
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        milli = int((now - second) * 1000)
        shown = ",".join(f"{k}={v}" for k, v in rungs.items()) if rungs else "-"
        msg = f"{method} {path} {status} {ms:.3f}ms model={model} id={request_id or '-'} rungs={shown}"
        if handler.json:
            handler.add_line(orjson.dumps({
                "ts": f"{self._iso}.{milli:03d}+00:00", "level": "info", "logger": "brickwork.access",
                "msg": msg, "method": method, "path": path, "status": status, "model": model,
                "latency_ms": ms, "request_id": request_id, "rungs": rungs or {},
                **_trace_id()}).decode())
        else:
            handler.add_line(f"{self._stamp},{milli:03d} INFO brickwork.access: {msg}")


class _Limiter:
    """At most ``per_s`` lines a second; what is held back is counted into the next line."""

    def __init__(self, per_s: int) -> None:
        self.per_s = per_s
        self.window = 0.0
        self.count = 0
        self.dropped = 0

    def admit(self) -> int | None:
        """None: hold this line back; else how many lines were held back before it."""
        now = time.monotonic()
        if now - self.window >= 1.0:
            self.window, self.count = now, 0
        self.count += 1
        if self.count > self.per_s:
            self.dropped += 1
            return None
        dropped, self.dropped = self.dropped, 0
        return dropped


_errors = _Limiter(ERRORS_PER_S)


def log_error(method: str, path: str, model: str | None, status: int, exc: BaseException,
              request_id: str | None = None) -> None:
    """One line for a 5xx answer: the status, the request, and the error with its causes."""
    dropped = _errors.admit()
    if dropped is None:
        return
    cause = f"{type(exc).__name__}: {exc}"
    inner = exc.__cause__ or exc.__context__
    seen = 0
    while inner is not None and seen < 3:
        cause += f" <- {type(inner).__name__}: {inner}"
        inner, seen = inner.__cause__ or inner.__context__, seen + 1
    more = f" ({dropped} more 5xx lines held back in the last second)" if dropped else ""
    server_log.log(logging.ERROR if status == 500 else logging.WARNING,
                   "%s %s %d model=%s id=%s cause=%s%s", method, path, status, model or "-",
                   request_id or "-", cause, more,
                   extra={"method": method, "path": path, "status": status, "model": model,
                          "request_id": request_id, "cause": cause, "held_back": dropped})


def _trace_id() -> dict[str, str]:
    """``{"trace_id": ...}`` of the request's span while tracing is on (to find its trace)."""
    from .. import tracing

    if tracing.TRACER is None:
        return {}
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return {"trace_id": format(ctx.trace_id, "032x")} if ctx.is_valid else {}
