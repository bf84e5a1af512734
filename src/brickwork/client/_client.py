"""Sync and async clients for any Open Inference Protocol v2 server (brickwork, Triton, KServe,
MLServer), JSON or binary tensors, on pooled httpx connections.

A failed request raises the :mod:`brickwork.errors` class its status maps to (400
``InvalidInput``, 404 ``NotFound``, 503 ``Overloaded`` with ``retry_after_s`` …) with the
server's message; a server that cannot be reached raises ``UpstreamError``, one that does not
answer in time ``DeadlineExceeded``.

One implementation, two thin drivers. Every operation is written once, in :class:`_Core`, as a
generator that yields the HTTP calls it needs (:class:`_Call`) and receives their answers — no
I/O of its own (the "sans-I/O" shape of h11 and httpx's own core). :class:`AsyncClient` drives it
with ``await httpx.AsyncClient.request``, :class:`Client` with ``httpx.Client.request``. The
sync path was kept on httpx's sync client rather than running the async core on a private
event-loop thread: a loop thread adds two thread hand-offs per request (measurably slower for
small requests) and makes the client unusable from inside a running loop's thread pool, while
the generator core gives the same single source of logic for free. Envelopes are
:mod:`brickwork.protocol`'s ``encode_request``/``decode_response``, shared with the server.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import tracing as _tracing
from ..errors import DeadlineExceeded, RequestError, UpstreamError
from ..protocol import InferResponse, decode_response, encode_request, error_for_status, load_json
from ..spec import to_numpy_dtype

__all__ = ["AsyncClient", "Client", "InferResponse"]


@dataclass(frozen=True, slots=True)
class _Call:
    """One HTTP call an operation needs."""

    method: str
    path: str
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None  # None: the client's


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    content: bytes
    headers: Mapping[str, str]


_Flow = Generator[_Call, _Reply, Any]


def _as_array(value: Any, datatype: str | None) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if datatype == "BYTES" or (datatype is None and _is_text(value)):
        return np.asarray(value, dtype=object)
    return np.asarray(value, dtype=to_numpy_dtype(datatype) if datatype else None)


def _is_text(value: Any) -> bool:
    while isinstance(value, list | tuple) and value:
        value = value[0]
    return isinstance(value, str | bytes)


def _model_path(model: str, version: str | None) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "")


class _Core:
    """Every client operation, once, as a generator of HTTP calls (see the module docstring)."""

    def __init__(self, url: str, *, api_key: str | None, timeout_s: float | None, binary: bool) -> None:
        self.url = url.rstrip("/")
        self.binary = binary
        self.timeout_s = timeout_s
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.datatypes: dict[str, dict[str, str]] = {}  # model -> input -> datatype

    def status_is_ok(self, path: str) -> _Flow:
        reply = yield _Call("GET", path)
        return reply.status == 200

    def get_json(self, path: str) -> _Flow:
        reply = yield _Call("GET", path)
        if reply.status != 200:
            raise error_for_status(reply.status, reply.content, reply.headers, self.url + path)
        return load_json(reply.content, "response")

    def model_metadata(self, model: str, version: str | None) -> _Flow:
        meta = dict((yield from self.get_json(_model_path(model, version))))
        self.datatypes[model] = {t["name"]: t["datatype"] for t in meta.get("inputs", [])}
        return meta

    def metrics(self) -> _Flow:
        reply = yield _Call("GET", "/metrics")
        if reply.status != 200:
            raise error_for_status(reply.status, reply.content, reply.headers, self.url + "/metrics")
        return reply.content.decode("utf-8")

    def infer(self, model: str, inputs: Mapping[str, Any], *, outputs: Sequence[str] | None,
              binary: bool | None, timeout_s: float | None, request_id: str | None,
              version: str | None) -> _Flow:
        if model not in self.datatypes and any(not isinstance(v, np.ndarray) for v in inputs.values()):
            yield from self.model_metadata(model, version)  # lists take the declared datatypes
        types = self.datatypes.get(model, {})
        arrays = {name: _as_array(value, types.get(name)) for name, value in inputs.items()}
        headers, body = encode_request(arrays, outputs=outputs,
                                       binary=self.binary if binary is None else binary,
                                       request_id=request_id, timeout_s=timeout_s)
        path = _model_path(model, version) + "/infer"
        if _tracing.TRACER is not None:  # continue the caller's trace upstream (W3C traceparent)
            headers = {**headers, **_tracing.outgoing()}
        wait = timeout_s + 1.0 if timeout_s is not None else None
        reply = yield _Call("POST", path, body, headers, wait)
        return decode_response(reply.status, reply.content, reply.headers, self.url + path)

    def transport_error(self, exc: Exception, call: _Call) -> RequestError:
        import httpx

        where = self.url + call.path
        if isinstance(exc, httpx.TimeoutException):
            wait = call.timeout_s if call.timeout_s is not None else self.timeout_s
            return DeadlineExceeded(f"{where}: no answer within {wait} s")
        return UpstreamError(f"{where}: cannot reach the server: {type(exc).__name__}: {exc}")


def _kwargs(call: _Call) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if call.content is not None:
        kw["content"] = call.content
    if call.headers:
        kw["headers"] = dict(call.headers)
    if call.timeout_s is not None:
        kw["timeout"] = call.timeout_s
    return kw


def _limits(max_connections: int) -> Any:
    import httpx

    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


class Client:
    """``Client("http://127.0.0.1:8000").infer("model", {"x": array})``; thread-safe."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float | None = 30.0,
                 binary: bool = True, max_connections: int = 100) -> None:
        import httpx

        self._core = _Core(url, api_key=api_key, timeout_s=timeout_s, binary=binary)
        self.url, self.binary, self.timeout_s = self._core.url, binary, timeout_s
        self._http = httpx.Client(base_url=self.url, headers=self._core.headers, timeout=timeout_s,
                                  limits=_limits(max_connections))

    def _run(self, flow: _Flow) -> Any:
        import httpx

        try:
            call = next(flow)
            while True:
                try:
                    r = self._http.request(call.method, call.path, **_kwargs(call))
                except httpx.HTTPError as exc:
                    raise self._core.transport_error(exc, call) from exc
                call = flow.send(_Reply(r.status_code, r.content, r.headers))
        except StopIteration as done:
            return done.value

    def server_live(self) -> bool:
        return bool(self._run(self._core.status_is_ok("/v2/health/live")))

    def server_ready(self) -> bool:
        return bool(self._run(self._core.status_is_ok("/v2/health/ready")))

    def server_metadata(self) -> dict[str, Any]:
        return dict(self._run(self._core.get_json("/v2")))

    def model_ready(self, model: str, version: str | None = None) -> bool:
        return bool(self._run(self._core.status_is_ok(_model_path(model, version) + "/ready")))

    def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        return dict(self._run(self._core.model_metadata(model, version)))

    def metrics(self) -> str:
        return str(self._run(self._core.metrics()))

    def infer(self, model: str, inputs: Mapping[str, Any], *, outputs: Sequence[str] | None = None,
              binary: bool | None = None, timeout_s: float | None = None,
              request_id: str | None = None, version: str | None = None) -> InferResponse:
        """Run one request. Lists are converted to the model's declared datatypes (fetched
        once from its metadata); numpy arrays are sent as they are. ``timeout_s`` becomes the
        request's deadline on the server (and bounds the HTTP wait)."""
        result: InferResponse = self._run(self._core.infer(
            model, inputs, outputs=outputs, binary=binary, timeout_s=timeout_s,
            request_id=request_id, version=version))
        return result

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The asyncio face of the same core: ``await AsyncClient(url).infer(...)``."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float | None = 30.0,
                 binary: bool = True, max_connections: int = 100) -> None:
        import httpx

        self._core = _Core(url, api_key=api_key, timeout_s=timeout_s, binary=binary)
        self.url, self.binary, self.timeout_s = self._core.url, binary, timeout_s
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._core.headers,
                                       timeout=timeout_s, limits=_limits(max_connections))

    async def _run(self, flow: _Flow) -> Any:
        import httpx

        try:
            call = next(flow)
            while True:
                try:
                    r = await self._http.request(call.method, call.path, **_kwargs(call))
                except httpx.HTTPError as exc:
                    raise self._core.transport_error(exc, call) from exc
                call = flow.send(_Reply(r.status_code, r.content, r.headers))
        except StopIteration as done:
            return done.value

    async def server_live(self) -> bool:
        return bool(await self._run(self._core.status_is_ok("/v2/health/live")))

    async def server_ready(self) -> bool:
        return bool(await self._run(self._core.status_is_ok("/v2/health/ready")))

    async def server_metadata(self) -> dict[str, Any]:
        return dict(await self._run(self._core.get_json("/v2")))

    async def model_ready(self, model: str, version: str | None = None) -> bool:
        return bool(await self._run(self._core.status_is_ok(_model_path(model, version) + "/ready")))

    async def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        return dict(await self._run(self._core.model_metadata(model, version)))

    async def metrics(self) -> str:
        return str(await self._run(self._core.metrics()))

    async def infer(self, model: str, inputs: Mapping[str, Any], *,
                    outputs: Sequence[str] | None = None, binary: bool | None = None,
                    timeout_s: float | None = None, request_id: str | None = None,
                    version: str | None = None) -> InferResponse:
        """As :meth:`Client.infer`."""
        result: InferResponse = await self._run(self._core.infer(
            model, inputs, outputs=outputs, binary=binary, timeout_s=timeout_s,
            request_id=request_id, version=version))
        return result

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
