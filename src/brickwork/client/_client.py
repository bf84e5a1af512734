"""Sync and async clients for any Open Inference Protocol v2 server (brickwork, Triton, KServe,
MLServer), JSON or binary tensors, on pooled httpx connections.

A failed request raises the :mod:`brickwork.errors` class its status maps to (400
``InvalidInput``, 404 ``NotFound``, 503 ``Overloaded`` with ``retry_after_s`` …) with the
server's message; a server that cannot be reached raises ``UpstreamError``, one that does not
answer in time ``DeadlineExceeded``.
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
from ..protocol import HEADER_LENGTH, decode_tensor, dumps, encode_tensor, load_json
from ..spec import to_numpy_dtype

__all__ = ["AsyncClient", "Client", "InferResponse"]

_BY_STATUS: dict[int, type[RequestError]] = {
    400: InvalidInput, 401: Unauthorized, 404: NotFound, 413: PayloadTooLarge, 500: ModelError,
    502: UpstreamError, 503: Overloaded, 504: DeadlineExceeded,
}


class InferResponse(dict[str, np.ndarray]):
    """The output tensors by name, plus the response's ``id``, ``model_name``,
    ``parameters``, ``rungs`` (which fallback rung answered, per ladder) and ``members``
    (which members of each deadline ensemble answered)."""

    def __init__(self, tensors: Mapping[str, np.ndarray], *, id: str | None = None,
                 model_name: str | None = None, parameters: Mapping[str, Any] | None = None) -> None:
        super().__init__(tensors)
        self.id = id
        self.model_name = model_name
        self.parameters = dict(parameters or {})
        self.rungs = {k[5:]: v for k, v in self.parameters.items() if k.startswith("rung.")}
        self.members = {k[8:]: tuple(str(v).split(",")) if v else ()
                        for k, v in self.parameters.items() if k.startswith("members.")}


def _error(status: int, content: bytes, headers: Mapping[str, str], url: str) -> RequestError:
    """The error for an HTTP answer; ``response_status`` on it is the status received."""
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


def _as_array(value: Any, datatype: str | None) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if datatype == "BYTES" or (datatype is None and _is_text(value)):
        arr = np.asarray(value, dtype=object)
        return arr
    return np.asarray(value, dtype=to_numpy_dtype(datatype) if datatype else None)


def _is_text(value: Any) -> bool:
    while isinstance(value, list | tuple) and value:
        value = value[0]
    return isinstance(value, str | bytes)


def build_request(inputs: Mapping[str, Any], *, outputs: Sequence[str] | None, binary: bool,
                  request_id: str | None, timeout_s: float | None,
                  datatypes: Mapping[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    items, raws = [], []
    for name, value in inputs.items():
        item, raw = encode_tensor(name, _as_array(value, (datatypes or {}).get(name)), binary=binary)
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


def parse_response(status: int, content: bytes, headers: Mapping[str, str], url: str) -> InferResponse:
    if status != 200:
        raise _error(status, content, headers, url)
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


def _model_path(model: str, version: str | None) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "")


class _Base:
    def __init__(self, url: str, *, api_key: str | None, timeout_s: float | None,
                 binary: bool) -> None:
        self.url = url.rstrip("/")
        self.binary = binary
        self.timeout_s = timeout_s
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._datatypes: dict[str, dict[str, str]] = {}

    def _needs_types(self, model: str, inputs: Mapping[str, Any]) -> bool:
        return model not in self._datatypes and any(
            not isinstance(v, np.ndarray) for v in inputs.values())

    def _remember(self, model: str, meta: Mapping[str, Any]) -> None:
        self._datatypes[model] = {t["name"]: t["datatype"] for t in meta.get("inputs", [])}

    @staticmethod
    def _transport_error(exc: Exception, url: str, timeout_s: float | None) -> RequestError:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return DeadlineExceeded(f"{url}: no answer within {timeout_s} s")
        return UpstreamError(f"{url}: cannot reach the server: {type(exc).__name__}: {exc}")


class Client(_Base):
    """``Client("http://127.0.0.1:8000").infer("model", {"x": array})``; thread-safe."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float | None = 30.0,
                 binary: bool = True, max_connections: int = 100) -> None:
        import httpx

        super().__init__(url, api_key=api_key, timeout_s=timeout_s, binary=binary)
        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout_s,
                                  limits=httpx.Limits(max_connections=max_connections,
                                                      max_keepalive_connections=max_connections))

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            return self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, self.url + path, kw.get("timeout", self.timeout_s)) from exc

    def _get_json(self, path: str) -> Any:
        r = self._request("GET", path)
        if r.status_code != 200:
            raise _error(r.status_code, r.content, r.headers, self.url + path)
        return load_json(r.content, "response")

    def server_live(self) -> bool:
        return bool(self._request("GET", "/v2/health/live").status_code == 200)

    def server_ready(self) -> bool:
        return bool(self._request("GET", "/v2/health/ready").status_code == 200)

    def server_metadata(self) -> dict[str, Any]:
        return dict(self._get_json("/v2"))

    def model_ready(self, model: str, version: str | None = None) -> bool:
        return bool(self._request("GET", _model_path(model, version) + "/ready").status_code == 200)

    def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        meta = dict(self._get_json(_model_path(model, version)))
        self._remember(model, meta)
        return meta

    def metrics(self) -> str:
        r = self._request("GET", "/metrics")
        if r.status_code != 200:
            raise _error(r.status_code, r.content, r.headers, self.url + "/metrics")
        return str(r.text)

    def infer(self, model: str, inputs: Mapping[str, Any], *, outputs: Sequence[str] | None = None,
              binary: bool | None = None, timeout_s: float | None = None,
              request_id: str | None = None, version: str | None = None) -> InferResponse:
        """Run one request. Lists are converted to the model's declared datatypes (fetched
        once from its metadata); numpy arrays are sent as they are. ``timeout_s`` becomes the
        request's deadline on the server (and bounds the HTTP wait)."""
        if self._needs_types(model, inputs):
            self.model_metadata(model, version)
        headers, body = build_request(inputs, outputs=outputs, binary=self.binary if binary is None else binary,
                                      request_id=request_id, timeout_s=timeout_s,
                                      datatypes=self._datatypes.get(model))
        path = _model_path(model, version) + "/infer"
        kw: dict[str, Any] = {"content": body, "headers": headers}
        if timeout_s is not None:
            kw["timeout"] = timeout_s + 1.0
        r = self._request("POST", path, **kw)
        return parse_response(r.status_code, r.content, r.headers, self.url + path)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: ``await AsyncClient(url).infer(...)``."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float | None = 30.0,
                 binary: bool = True, max_connections: int = 100) -> None:
        import httpx

        super().__init__(url, api_key=api_key, timeout_s=timeout_s, binary=binary)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=timeout_s,
                                       limits=httpx.Limits(max_connections=max_connections,
                                                           max_keepalive_connections=max_connections))

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            return await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, self.url + path, kw.get("timeout", self.timeout_s)) from exc

    async def _get_json(self, path: str) -> Any:
        r = await self._request("GET", path)
        if r.status_code != 200:
            raise _error(r.status_code, r.content, r.headers, self.url + path)
        return load_json(r.content, "response")

    async def server_live(self) -> bool:
        return bool((await self._request("GET", "/v2/health/live")).status_code == 200)

    async def server_ready(self) -> bool:
        return bool((await self._request("GET", "/v2/health/ready")).status_code == 200)

    async def server_metadata(self) -> dict[str, Any]:
        return dict(await self._get_json("/v2"))

    async def model_ready(self, model: str, version: str | None = None) -> bool:
        r = await self._request("GET", _model_path(model, version) + "/ready")
        return bool(r.status_code == 200)

    async def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        meta = dict(await self._get_json(_model_path(model, version)))
        self._remember(model, meta)
        return meta

    async def infer(self, model: str, inputs: Mapping[str, Any], *,
                    outputs: Sequence[str] | None = None, binary: bool | None = None,
                    timeout_s: float | None = None, request_id: str | None = None,
                    version: str | None = None) -> InferResponse:
        if self._needs_types(model, inputs):
            await self.model_metadata(model, version)
        headers, body = build_request(inputs, outputs=outputs, binary=self.binary if binary is None else binary,
                                      request_id=request_id, timeout_s=timeout_s,
                                      datatypes=self._datatypes.get(model))
        path = _model_path(model, version) + "/infer"
        kw: dict[str, Any] = {"content": body, "headers": headers}
        if timeout_s is not None:
            kw["timeout"] = timeout_s + 1.0
        r = await self._request("POST", path, **kw)
        return parse_response(r.status_code, r.content, r.headers, self.url + path)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
