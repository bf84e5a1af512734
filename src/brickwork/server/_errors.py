"""The one place where exceptions become HTTP responses: ``{"error": "..."}`` with the status
the error carries (see :mod:`brickwork.errors`), ``Retry-After`` for ``Overloaded``."""

from __future__ import annotations

import logging
import math

import orjson

from ..errors import Overloaded, RequestError

__all__ = ["Reply", "error_reply", "plain_error"]

log = logging.getLogger("brickwork.server")

JSON = (b"content-type", b"application/json")
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


def plain_error(status: int, message: str, *extra: tuple[bytes, bytes]) -> Reply:
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
    log.exception("internal error while serving a request", exc_info=exc)
    return plain_error(500, f"internal server error: {type(exc).__name__}"), "InternalError"
