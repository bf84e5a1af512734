"""The one place where exceptions become HTTP responses: ``{"error": "..."}`` with the status
the error carries (see :mod:`brickwork.errors`), ``Retry-After`` for ``Overloaded``.

An unexpected exception (a bug: 500) is logged with its traceback once per cause (its type and
the line that raised it) per :data:`LOG_EVERY_S`; repeats in between are counted and the count
is logged with the next traceback, so a flood of one bad request cannot flood the log."""

from __future__ import annotations

import logging
import math
import time

import orjson

from ..errors import Overloaded, RequestError

__all__ = ["Reply", "error_reply", "plain_error"]

log = logging.getLogger("brickwork.server")

JSON = (b"content-type", b"application/json")
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]
LOG_EVERY_S = 60.0
_MAX_MESSAGE = 2000  # characters of an error message sent back
_MAX_CAUSES = 256
_logged: dict[tuple[str, str, int], list[float]] = {}  # cause -> [last logged at, repeats since]


def plain_error(status: int, message: str, *extra: tuple[bytes, bytes]) -> Reply:
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE - 3] + "..."
    return status, [JSON, *extra], orjson.dumps({"error": message})


def error_reply(exc: BaseException) -> tuple[Reply, str]:
    """The response for ``exc`` and the error kind counted in /metrics."""
    if isinstance(exc, RequestError):
        extra: list[tuple[bytes, bytes]] = []
        if isinstance(exc, Overloaded):
            extra.append((b"retry-after", str(max(1, math.ceil(exc.retry_after_s))).encode()))
        if exc.status == 413:
            extra.append((b"connection", b"close"))
        return plain_error(exc.status, exc.message, *extra), type(exc).__name__
    log_internal(exc)
    return plain_error(500, f"internal server error: {type(exc).__name__}"), "InternalError"


def log_internal(exc: BaseException) -> None:
    """Log ``exc`` with its traceback, at most once per cause per ``LOG_EVERY_S``."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    cause = (type(exc).__qualname__, tb.tb_frame.f_code.co_filename if tb else "",
             tb.tb_lineno if tb else 0)
    now = time.monotonic()
    seen = _logged.get(cause)
    if seen is not None and now - seen[0] < LOG_EVERY_S:
        seen[1] += 1
        return
    repeats = seen[1] if seen is not None else 0
    if len(_logged) >= _MAX_CAUSES:
        _logged.clear()
    _logged[cause] = [now, 0]
    more = f" ({repeats} more like it in the last {LOG_EVERY_S:g} s were not logged)" if repeats else ""
    log.error("internal error while serving a request%s", more, exc_info=exc)
