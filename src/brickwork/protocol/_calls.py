"""The calling side of the infer envelope: one v2 request out, one response (or error) in.

:mod:`._infer` is the serving side (``decode_request``/``encode_response``); both follow the same
rules (binary tensors after a JSON header of ``Inference-Header-Content-Length`` bytes, one
``rung.<ladder>`` parameter per fallback ladder, ``timeout_s`` in ``parameters``), so a client
and a server built on this package agree by construction. Pure functions: no sockets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    Unauthorized,
    UpstreamError,
)
from ._tensors import HEADER_LENGTH, decode_tensor, dumps, encode_tensor, load_json

__all__ = ["InferResponse", "decode_response", "encode_request", "error_for_status"]

_BY_STATUS: dict[int, type[RequestError]] = {
    cls.status: cls for cls in (InvalidInput, Unauthorized, NotFound, PayloadTooLarge,
                                ModelError, UpstreamError, Overloaded, DeadlineExceeded)
}  # 503 is Overloaded (WorkerCrashed shares it; a caller cannot tell them apart)


class InferResponse(dict[str, np.ndarray]):
    """The output tensors by name, plus the response's ``id``, ``model_name``,
    ``parameters`` and ``rungs`` (which fallback rung answered, per ladder)."""

    def __init__(self, tensors: Mapping[str, np.ndarray], *, id: str | None = None,
                 model_name: str | None = None, parameters: Mapping[str, Any] | None = None) -> None:
        super().__init__(tensors)
        self.id = id
        self.model_name = model_name
        self.parameters = dict(parameters or {})
        self.rungs = {k[5:]: v for k, v in self.parameters.items() if k.startswith("rung.")}


def encode_request(inputs: Mapping[str, np.ndarray], *, outputs: Sequence[str] | None = None,
                   binary: bool = True, request_id: str | None = None,
                   timeout_s: float | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of an infer request; with ``binary`` every tensor (and every output
    asked for) travels as raw bytes after the JSON header."""
    items, raws = [], []
    for name, value in inputs.items():
        item, raw = encode_tensor(name, value, binary=binary)
        items.append(item)
        if raw is not None:
            raws.append(raw)
    doc: dict[str, Any] = {"inputs": items}
    if request_id is not None:
        doc["id"] = request_id
    params: dict[str, Any] = {}
    if binary:
        params["binary_data_output"] = True
    if timeout_s is not None:
        params["timeout_s"] = timeout_s
    if params:
        doc["parameters"] = params
    if outputs is not None:
        doc["outputs"] = [{"name": n, "parameters": {"binary_data": binary}} for n in outputs]
    header = dumps(doc)
    if not raws:
        return {"content-type": "application/json"}, header
    return ({"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))},
            b"".join([header, *raws]))


def decode_response(status: int, content: bytes, headers: Mapping[str, str], url: str) -> InferResponse:
    """The response's tensors, or the error its status maps to (:func:`error_for_status`).
    A 200 that is not a v2 response is an ``UpstreamError``."""
    if status != 200:
        raise error_for_status(status, content, headers, url)
    hl = headers.get(HEADER_LENGTH.lower()) or headers.get(HEADER_LENGTH)
    try:
        if hl is None:
            doc, pos = load_json(content, "response"), len(content)
        else:
            pos = int(hl)
            doc = load_json(memoryview(content)[:pos], "response")
        tensors: dict[str, np.ndarray] = {}
        for item in doc.get("outputs", []):
            name, arr, pos = decode_tensor(item, content, pos, where="output")
            tensors[name] = arr
    except (InvalidInput, ValueError, AttributeError) as exc:
        raise UpstreamError(f"{url}: malformed v2 response: {exc}", status) from None
    return InferResponse(tensors, id=doc.get("id"), model_name=doc.get("model_name"),
                         parameters=doc.get("parameters"))


def error_for_status(status: int, content: bytes, headers: Mapping[str, str], url: str) -> RequestError:
    """The :mod:`brickwork.errors` class an HTTP error answer maps to (the inverse of the
    server's mapping), with the server's message; ``response_status`` is the status received."""
    err = _error_of(status, content, headers, url)
    err.response_status = status  # type: ignore[attr-defined]
    return err


def _error_of(status: int, content: bytes, headers: Mapping[str, str], url: str) -> RequestError:
    try:
        doc = load_json(content, "error")
        message = doc.get("error") if isinstance(doc, dict) else None
    except InvalidInput:
        message = None
    message = str(message or content[:300].decode("utf-8", "replace") or f"HTTP {status}")
    message = f"{url}: HTTP {status}: {message}"
    cls = _BY_STATUS.get(status)
    if cls is Overloaded:
        try:
            retry = float(headers.get("retry-after", "1"))
        except ValueError:
            retry = 1.0
        return Overloaded(message, retry)
    if cls is UpstreamError:
        return UpstreamError(message, status)
    if cls is None:
        err = RequestError(message)
        err.status = status
        return err
    return cls(message)
