"""The Open Inference Protocol v2 over gRPC: KServe's / Triton's ``inference.GRPCInferenceService``
on ``grpc.aio``, beside the HTTP server, on the same event loop and the same :class:`App` (its
models, readiness, API key and metrics), so both fronts answer alike.

    ServerLive, ServerReady                       never need the API key
    ModelReady, ServerMetadata, ModelMetadata     the key, when one is set
    ModelInfer                                    raw_input_contents or typed contents in,
                                                  raw_output_contents out
    ModelStreamInfer                              one stream, many requests answered as they
                                                  finish (match them by ``id``); a failed request
                                                  is a response with ``error_message``, the
                                                  stream goes on

Errors become gRPC status codes (see :data:`STATUS`) with the same messages as HTTP's. The API
key travels as metadata, ``authorization: Bearer <key>`` or ``x-api-key: <key>``. A message over
``max_body_bytes`` is refused by gRPC (RESOURCE_EXHAUSTED) before it is parsed. The port is
bound with SO_REUSEPORT, so ``workers`` processes can each serve it (the kernel spreads new
connections, so one long-lived channel stays on one worker).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from .. import __version__
from ..errors import (
    ConfigError,
    DeadlineExceeded,
    InvalidInput,
    ModelError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    Unauthorized,
    UpstreamError,
    WorkerCrashed,
)
from ..protocol.grpc import decode_grpc_request, encode_grpc_response, tensor_metadata
from ..protocol.grpc import messages as pb
from ._app import EXTENSIONS, App, Model
from ._errors import log

__all__ = ["STATUS", "GrpcServer", "grpc_status"]

SC = grpc.StatusCode
STATUS: dict[type[RequestError], grpc.StatusCode] = {
    InvalidInput: SC.INVALID_ARGUMENT,
    Unauthorized: SC.UNAUTHENTICATED,
    NotFound: SC.NOT_FOUND,
    PayloadTooLarge: SC.RESOURCE_EXHAUSTED,
    ModelError: SC.INTERNAL,
    UpstreamError: SC.UNAVAILABLE,  # INTERNAL when the remote model answered a non-transient error
    Overloaded: SC.UNAVAILABLE,
    WorkerCrashed: SC.UNAVAILABLE,
    DeadlineExceeded: SC.DEADLINE_EXCEEDED,
}
_MORE, _END = object(), object()  # stream bookkeeping: a request came in; the requests ended
_TRANSIENT = frozenset({None, 429, 502, 503, 504})
_NO_KEY = ("missing or wrong API key: send metadata 'authorization: Bearer <key>' "
           "(or 'x-api-key: <key>')")


def grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str, str, int]:
    """``(code, message, error kind for /metrics, the HTTP status it stands for)``."""
    if isinstance(exc, RequestError):
        code = SC.INTERNAL
        for cls in type(exc).__mro__:
            if cls in STATUS:
                code = STATUS[cls]
                break
        if isinstance(exc, UpstreamError) and exc.upstream_status not in _TRANSIENT:
            code = SC.INTERNAL
        return code, exc.message, type(exc).__name__, exc.status
    return SC.INTERNAL, f"internal server error: {type(exc).__name__}", "InternalError", 500


class GrpcServer:
    """Serves ``app`` over gRPC on ``host:port`` (port 0: a free one; see :attr:`port`)."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._key = app._key
        self._server: Any = None
        self._stopping: asyncio.Task[None] | None = None
        self._meta = pb.ServerMetadataResponse(name="brickwork", version=__version__,
                                               extensions=EXTENSIONS)
        self._model_meta: dict[str, tuple[Model, Any]] = {}  # name → (the model, its metadata)

    async def start(self) -> int:
        """Listen and answer; returns the port. Also drains this server first when the app
        shuts down."""
        cfg = self.app.config
        options = [("grpc.max_receive_message_length", cfg.max_body_bytes),
                   ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 1)]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers((self._handlers(),))
        host = f"[{self.host}]" if ":" in self.host else self.host
        try:
            port = server.add_insecure_port(f"{host}:{self.port}")
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen for gRPC on {self.host}:{self.port}: {exc}") from exc
        await server.start()
        self._server, self.port = server, port
        self.app.on_shutdown.append(self.stop)
        return port

    def begin_stop(self) -> None:
        """Refuse new calls now; calls in flight get ``drain_timeout_s`` to finish."""
        if self._stopping is None and self._server is not None:
            self._stopping = asyncio.get_running_loop().create_task(
                self._server.stop(self.app.config.drain_timeout_s))

    async def stop(self) -> None:
        self.begin_stop()
        if self._stopping is not None:
            await self._stopping

    def _handlers(self) -> grpc.GenericRpcHandler:
        def unary(fn: Callable[[Any, Any], Awaitable[Any]], req: Any, resp: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)

        return grpc.method_handlers_generic_handler(pb.SERVICE, {
            "ServerLive": unary(self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": unary(self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": unary(self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": unary(self.server_metadata, pb.ServerMetadataRequest,
                                    pb.ServerMetadataResponse),
            "ModelMetadata": unary(self.model_metadata, pb.ModelMetadataRequest,
                                   pb.ModelMetadataResponse),
            "ModelInfer": unary(self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
            "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
                self.model_stream_infer, request_deserializer=pb.ModelInferRequest.FromString,
                response_serializer=pb.ModelStreamInferResponse.SerializeToString),
        })

    # -- helpers -------------------------------------------------------------------------
    def _authorise(self, context: Any) -> None:
        if self._key is None:
            return
        for k, v in context.invocation_metadata() or ():
            if k == "authorization" and v[:7].lower() == "bearer ":
                if hmac.compare_digest(v[7:].strip().encode(), self._key):
                    return
                break
            if k == "x-api-key":
                if hmac.compare_digest(v.strip().encode(), self._key):
                    return
                break
        raise Unauthorized(_NO_KEY)

    def _model(self, name: str, version: str) -> Model:
        model = self.app.models.get(name)
        if model is None:
            raise NotFound(f"unknown model {name!r}; this server has {sorted(self.app.models)}")
        if version not in ("", model.version):
            raise NotFound(f"model {name!r} has no version {version!r}; it has [{model.version!r}]")
        return model

    # -- the service ---------------------------------------------------------------------
    async def server_live(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=not self.app.unlive())  # as /v2/health/live

    async def server_ready(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=not self.app.unready())  # as /v2/health/ready

    async def model_ready(self, request: Any, context: Any) -> Any:
        try:
            self._authorise(context)
            model = self._model(request.name, request.version)
        except RequestError as exc:
            await _abort(context, exc)
        return pb.ModelReadyResponse(ready=not self.app._unready(model))

    async def server_metadata(self, request: Any, context: Any) -> Any:
        try:
            self._authorise(context)
        except RequestError as exc:
            await _abort(context, exc)
        return self._meta

    async def model_metadata(self, request: Any, context: Any) -> Any:
        try:
            self._authorise(context)
            model = self._model(request.name, request.version)
        except RequestError as exc:
            await _abort(context, exc)
        cached = self._model_meta.get(model.name)
        if cached is None or cached[0] is not model:  # a reload made a new version
            meta = pb.ModelMetadataResponse(name=model.name, versions=[model.version], platform="brickwork",
                                            inputs=tensor_metadata(model.inputs),
                                            outputs=tensor_metadata(model.outputs))
            self._model_meta[model.name] = cached = (model, meta)
        return cached[1]

    async def model_infer(self, request: Any, context: Any) -> Any:
        try:
            self._authorise(context)
            model = self._model(request.model_name, request.model_version)
        except RequestError as exc:
            await _abort(context, exc)
        try:
            return await self._infer(model, request, context.time_remaining())
        except Exception as exc:
            await _abort(context, exc)

    async def _infer(self, model: Model, request: Any, remaining_s: float | None) -> Any:
        """One infer request, counted in the model's metrics like an HTTP one."""
        t0 = time.perf_counter()
        metrics = model.metrics
        metrics.in_flight += 1
        try:
            if not model.ready:
                raise Overloaded(f"model {model.name!r} is not ready: the server is starting or draining")
            req = decode_grpc_request(request, model.inputs, model.outputs, model.name)
            timeout = req.timeout_s or self.app.config.request_timeout_s
            if remaining_s is not None:
                timeout = remaining_s if timeout is None else min(timeout, remaining_s)
            result = await model.pipeline.ainfer(req.inputs, timeout_s=timeout)
            reply = encode_grpc_response(model.name, req, result, model.output_names, result.rungs)
        except Exception as exc:
            _, _, kind, status = grpc_status(exc)
            metrics.observe(status, time.perf_counter() - t0, kind)
            raise
        finally:
            metrics.in_flight -= 1
        metrics.observe(200, time.perf_counter() - t0)
        return reply

    async def model_stream_infer(self, requests: AsyncIterator[Any], context: Any
                                 ) -> AsyncIterator[Any]:
        try:
            self._authorise(context)
        except RequestError as exc:
            await _abort(context, exc)
        out: asyncio.Queue[Any] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()

        async def answer(request: Any) -> None:
            try:
                model = self._model(request.model_name, request.model_version)
                reply = pb.ModelStreamInferResponse(infer_response=await self._infer(model, request, None))
            except Exception as exc:
                _log_internal(exc)
                reply = pb.ModelStreamInferResponse(error_message=grpc_status(exc)[1])
            out.put_nowait(reply)

        async def read() -> None:
            try:
                async for request in requests:
                    out.put_nowait(_MORE)  # one more answer to wait for
                    task = loop.create_task(answer(request))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            finally:
                out.put_nowait(_END)

        reader = loop.create_task(read())
        waiting, ended = 0, False
        try:
            while not (ended and waiting == 0):
                item = await out.get()
                if item is _END:
                    ended = True
                elif item is _MORE:
                    waiting += 1
                else:
                    waiting -= 1
                    yield item
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()


def _log_internal(exc: BaseException) -> None:
    if not isinstance(exc, RequestError):
        log.error("internal error while serving a gRPC request", exc_info=exc)


async def _abort(context: Any, exc: BaseException) -> Any:
    _log_internal(exc)
    code, message, _, _ = grpc_status(exc)
    if isinstance(exc, Overloaded):
        context.set_trailing_metadata((("retry-after", str(max(1, round(exc.retry_after_s + 0.499)))),))
    await context.abort(code, message)
