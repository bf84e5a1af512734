"""The Open Inference Protocol v2 endpoints, transport-independent (``App.handle``), served by
the lean HTTP/1.1 server in :mod:`._http` and usable as an ASGI 3 app in any ASGI server.

    GET  /v2                                   server metadata
    GET  /v2/health/live | /v2/health/ready    liveness / readiness (never need the API key)
    GET  /v2/models/{m}[/versions/{v}]         model metadata (inputs, outputs)
    GET  /v2/models/{m}[/versions/{v}]/ready   model readiness
    GET  /v2/models/{m}[/versions/{v}]/config  Triton-style model config (for tritonclient)
    POST /v2/models/{m}[/versions/{v}]/infer   inference: JSON and binary tensors
    POST /v2/repository/index                  the models and their state (see ._repository)
    POST /v2/repository/models/{m}/load|unload  reload a model from its file / stop serving it
    GET  /metrics                              Prometheus text
    GET  /dashboard[/...]                      the live dashboard (see ._dashboard)

Each pipeline is a model named after the pipeline; it has one version, ``"1"``. Pipelines start
on the server's own event loop (lifespan startup), so an infer request reaches the engine with
no thread hop.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from .. import __version__
from .. import tracing as _tracing
from ..errors import ConfigError, InvalidInput, PayloadTooLarge, RequestError
from ..pipeline import Pipeline
from ..protocol import decode_request, encode_response
from ..spec import TensorSpec
from ._config import ServerConfig
from ._dashboard import Dashboard
from ._errors import JSON, Reply, error_reply, plain_error
from ._log import AccessLog, log_error
from ._metrics import ModelMetrics, render
from ._repository import Repository
from ._stream import StreamReply

__all__ = ["App", "InferCall"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

EXTENSIONS = ["binary_tensor_data", "model_repository", "metrics"]
_OK_EMPTY: Reply = (200, [(b"content-type", b"text/plain")], b"")
# Bodies at least this large (or compressed ones at least _OFF_LOOP_COMPRESSED) are decoded on a
# helper thread, so one big request cannot hold the event loop (and every health probe) for
# long: the loop gets the GIL back every few milliseconds.
_OFF_LOOP_BYTES = 1024 * 1024
_OFF_LOOP_COMPRESSED = 16 * 1024
_DECODE_THREADS = 2
_CHALLENGE = (b"www-authenticate", b'Bearer realm="brickwork"')
_NO_KEY = ("missing or wrong API key: send 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')")
_PROBES = ("/v2/health/live", "/v2/health/ready")


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class InferCall:
    """An infer request the engine is answering (see ``App.infer_nowait``)."""

    __slots__ = ("executor", "future", "model", "req", "rid", "t0")

    def __init__(self, model: Model, t0: float, req: Any, rid: str | None, executor: Any,
                 future: asyncio.Future[Any]) -> None:
        self.model = model
        self.t0 = t0
        self.req = req
        self.rid = rid
        self.executor = executor
        self.future = future


class Model:
    """One served pipeline with everything the hot path needs precomputed."""

    __slots__ = ("config", "infer_path", "inputs", "local_executor", "metadata", "metrics", "name",
                 "output_names", "outputs", "pipeline", "ready", "version")

    def __init__(self, pipeline: Pipeline, *, version: str = "1", metrics: ModelMetrics | None = None) -> None:
        plan = pipeline.plan
        self.name = pipeline.name
        self.infer_path = f"/v2/models/{self.name}/infer"
        self.pipeline = pipeline
        # the engine's hot path, when the pipeline has one (see App._infer)
        self.local_executor: Callable[[], Any] | None = getattr(pipeline, "local_executor", None)
        self.inputs: dict[str, TensorSpec] = {s.name: s for s in plan.inputs}
        self.outputs: dict[str, TensorSpec] = {s.name: s for s in plan.outputs}
        self.output_names = tuple(s.name for s in plan.outputs)
        self.metrics = metrics if metrics is not None else ModelMetrics()
        self.ready = False
        self.version = version  # "1", then +1 per reload (see ._repository)
        self.metadata = orjson.dumps({
            "name": self.name, "versions": [version], "platform": "brickwork",
            "inputs": [s.to_dict() for s in plan.inputs],
            "outputs": [s.to_dict() for s in plan.outputs],
        })
        self.config = orjson.dumps({
            "name": self.name, "platform": "brickwork", "backend": "brickwork",
            "max_batch_size": 0,
            "input": [_triton_io(s) for s in plan.inputs],
            "output": [_triton_io(s) for s in plan.outputs],
        })


def _triton_io(spec: TensorSpec) -> dict[str, Any]:
    dtype = "TYPE_STRING" if spec.dtype == "BYTES" else f"TYPE_{spec.dtype}"
    return {"name": spec.name, "data_type": dtype, "dims": list(spec.shape)}


class App:
    """``App(pipelines, config)`` is an ASGI 3 application."""

    def __init__(self, pipelines: Iterable[Pipeline], config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.models: dict[str, Model] = {}
        for p in pipelines:
            if p.name in self.models:
                raise ConfigError(f"two pipelines are named {p.name!r}; model names must be unique")
            self.models[p.name] = Model(p)
        self.ready = False
        self.draining = False
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []  # other fronts' drains (gRPC)
        self._key = self.config.api_key.encode() if self.config.api_key else None
        self._decoders: ThreadPoolExecutor | None = None
        self.access = AccessLog(sample=self.config.access_log_sample) if self.config.access_log else None
        self._llm_front: Any = None  # the OpenAI/generate front, built on first use (_openai.py)
        self._server_meta = orjson.dumps({"name": "brickwork", "version": __version__,
                                          "extensions": EXTENSIONS})
        self.dashboard: Dashboard | None = Dashboard(self) if self.config.dashboard else None
        self.repository = Repository(self, Model)
        self._watch: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def startup(self) -> None:
        if self.config.trace and _tracing.TRACER is None:
            _tracing.enable()
        for model in self.models.values():
            try:
                await model.pipeline.start()
            except Exception as exc:
                raise ConfigError(f"model {model.name!r} failed to start: {type(exc).__name__}: "
                                  f"{exc}") from exc
            model.ready = True
        self.ready = True
        if self.config.reload:
            self._watch = asyncio.get_running_loop().create_task(self.repository.watch())

    async def shutdown(self) -> None:
        self.ready = False
        if self._watch is not None:
            self._watch.cancel()
        for drain in self.on_shutdown:
            await drain()
        for model in self.models.values():
            model.ready = False
            await model.pipeline.aclose()
        if self._decoders is not None:
            self._decoders.shutdown(wait=False, cancel_futures=True)
            self._decoders = None
        await self.repository.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._asgi_http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # reported by the server, which then exits
                    await send({"type": "lifespan.startup.failed",
                                "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routing (transport-independent) --------------------------------------------------
    def infer_model(self, method: str, path: str) -> Model | None:
        """The model a plain ``POST /v2/models/{m}/infer`` goes to, when ``handle`` would route
        it straight to :meth:`infer` (no API key, tracing off); None: ask ``handle``."""
        if (path[-6:] == "/infer" and path[:11] == "/v2/models/" and method == "POST"
                and self._key is None and _tracing.TRACER is None):
            return self.models.get(path[11:-6])
        return None

    async def handle(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                     body: bytes) -> Reply | StreamReply:
        """Answer one request whose body was read in full (and within ``max_body_bytes``).
        ``headers`` have lower-case names. Never raises: errors become replies (a streamed
        answer is a StreamReply)."""
        if path.startswith("/v1/") or (path.startswith("/v2/models/")
                                       and path.endswith(("/generate", "/generate_stream"))):
            return await self._llm(method, path, headers, body)
        if path.startswith("/v2/models/"):
            if self._key is not None and not self._authorised(headers):
                return _unauthorised()
            parts = path[11:].split("/")
            model = self.models.get(parts[0])
            if model is None:
                return plain_error(404, f"unknown model {parts[0]!r}; this server has {sorted(self.models)}")
            rest = parts[1:]
            if len(rest) >= 2 and rest[0] == "versions":
                if rest[1] != model.version:
                    return plain_error(404, f"model {model.name!r} has no version {rest[1]!r}; it has "
                                            f"[{model.version!r}]")
                rest = rest[2:]
            action = rest[0] if len(rest) == 1 else ("" if not rest else None)
            if action == "infer":
                if method != "POST":
                    return plain_error(405, "infer takes POST", (b"allow", b"POST"))
                if _tracing.TRACER is not None:
                    return await self._infer_traced(model, headers, body)
                return await self.infer(model, headers, body)
            if method not in ("GET", "HEAD"):
                return plain_error(405, f"{path} takes GET", (b"allow", b"GET"))
            if action == "":
                return 200, [JSON], model.metadata
            if action == "ready":
                why = self._unready(model)
                return _OK_EMPTY if not why else plain_error(503, f"model {model.name!r} is not ready: "
                                                                  + "; ".join(why))
            if action == "config":
                return 200, [JSON], model.config
            return plain_error(404, f"no endpoint {path}")
        if path.startswith("/v2/repository/"):
            if self._key is not None and not self._authorised(headers):
                return _unauthorised()
            return await self.repository.handle(method, path, body)
        if path.startswith("/dashboard") and self.dashboard is not None:
            return self.dashboard.handle(method, path, headers, body)
        return self._other(path, method, headers)

    def refuse_early(self, path: str, headers: list[tuple[bytes, bytes]]) -> Reply | None:
        """What to answer on the headers alone, before any body is read: 401 when an API key is
        required and missing or wrong. None: go on reading the request."""
        if self._key is None or path in _PROBES or self._authorised(headers):
            return None
        if self.dashboard is not None and path.startswith("/dashboard") and self.dashboard.early(path, headers):
            return None  # its login form, or its cookie
        return _unauthorised()

    def _other(self, path: str, method: str, headers: list[tuple[bytes, bytes]]) -> Reply:
        if path in _PROBES and method not in ("GET", "HEAD"):
            return plain_error(405, f"{path} takes GET or HEAD", (b"allow", b"GET, HEAD"))
        if path == "/v2/health/ready":
            why = self.unready()
            return _OK_EMPTY if not why else plain_error(503, "; ".join(why))
        if path == "/v2/health/live":
            dead = self.unlive()
            return _OK_EMPTY if not dead else plain_error(503, "; ".join(dead))
        if self._key is not None and not self._authorised(headers):
            return _unauthorised()
        if path in ("/v2", "/v2/"):
            return 200, [JSON], self._server_meta
        if path == "/metrics":
            stats = {name: m.pipeline.stats() for name, m in self.models.items()}
            body = render({n: m.metrics for n, m in self.models.items()}, stats)
            return 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], body
        if path == "/v2/repository/index" and method == "POST":
            return 200, [JSON], orjson.dumps([
                {"name": n, "version": "1", "state": "READY" if m.ready else "UNAVAILABLE"}
                for n, m in self.models.items()])
        return plain_error(404, f"no endpoint {method} {path}; see /v2 and /v2/models/{{name}}")

    async def _llm(self, method: str, path: str, headers: list[tuple[bytes, bytes]],
                   body: bytes) -> Reply | StreamReply:
        if self._key is not None and not self._authorised(headers):
            return _unauthorised()
        pipelines = {n: m.pipeline for n, m in self.models.items()}
        if self._llm_front is None:
            from ._openai import LlmFront

            self._llm_front = LlmFront(pipelines, self._model_metrics)
        else:
            self._llm_front.refresh(pipelines)  # a model loaded, unloaded or reloaded since
        reply: Reply | StreamReply = await self._llm_front.handle(method, path, body)
        return reply

    def _model_metrics(self, name: str) -> Any:
        model = self.models.get(name)
        return model.metrics if model is not None else None

    def unlive(self) -> list[str]:
        """Why this server process should be restarted (empty: live): a stage down past its
        policy's max_down_s. The HTTP and gRPC liveness probes both answer from it."""
        return [w for m in self.models.values() for w in getattr(m.pipeline, "unlive", list)()]

    def unready(self) -> list[str]:
        """Why this server cannot take traffic now (empty: ready): draining, starting, or a
        model's reasons. The HTTP and gRPC readiness probes both answer from it."""
        if self.draining or not self.ready:
            return ["draining" if self.draining else "starting"]
        return [w for m in self.models.values() for w in self._unready(m)]

    def _unready(self, model: Model) -> list[str]:
        """Why ``model`` cannot answer now (empty: ready): starting, draining, or the engine's
        reasons (a stage with no live replica or an open circuit that no fallback covers)."""
        if self.draining:
            return ["the server is draining"]
        if not model.ready:
            return ["starting"]
        unready = getattr(model.pipeline, "unready", None)
        return list(unready()) if unready is not None else []

    def _authorised(self, headers: list[tuple[bytes, bytes]]) -> bool:
        assert self._key is not None
        for k, v in headers:
            if k == b"authorization" and v[:7].lower() == b"bearer ":
                return hmac.compare_digest(v[7:].strip(), self._key)
            if k == b"x-api-key":
                return hmac.compare_digest(v.strip(), self._key)
        return False

    async def _infer_traced(self, model: Model, headers: list[tuple[bytes, bytes]], body: bytes) -> Reply:
        """``_infer`` in a SERVER span, the child of the request's ``traceparent`` (tracing on)."""
        with _tracing.server_span(f"infer {model.name}", headers) as span:
            reply = await self.infer(model, headers, body)
            span.set_attribute("brickwork.model", model.name)
            span.set_attribute("http.response.status_code", reply[0])
            if reply[0] >= 500:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR, f"HTTP {reply[0]}"))
        return reply

    # -- the hot path ------------------------------------------------------------------
    async def infer(self, model: Model, headers: list[tuple[bytes, bytes]], body: bytes) -> Reply:
        """Answer ``POST`` to ``model``'s infer endpoint (authorised, routed). Never raises."""
        out = self.infer_nowait(model, headers, body)
        if isinstance(out, tuple):
            return out
        if isinstance(out, InferCall):
            try:
                await out.future
            except asyncio.CancelledError:
                self.infer_cancelled(out)
                raise
            except Exception:
                pass  # infer_done answers it
            done = self.infer_done(out, out.future)
            return done if isinstance(done, tuple) else await done
        return await out

    def infer_nowait(self, model: Model, headers: list[tuple[bytes, bytes]], body: bytes
                     ) -> Reply | InferCall | Coroutine[Any, Any, Reply]:
        """``infer`` with no coroutine where it can (the native front's hot path): the reply;
        or, for a one-call plan, an :class:`InferCall` whose ``future`` the engine completes
        (then :meth:`infer_done` gives the reply, or :meth:`infer_cancelled` if it was
        cancelled); or, for the rest (a compressed or large body, a deadline, another plan),
        a coroutine to await for the reply. Never raises."""
        t0 = time.perf_counter()
        model.metrics.in_flight += 1
        rid = None
        try:
            header_length = None
            encoding = None
            for k, v in headers:
                if k == b"inference-header-content-length":
                    header_length = _int_header(k, v)
                elif k == b"content-encoding":
                    encoding = _coding(v, encoding)
                elif k == b"x-request-id":
                    rid = v.decode("latin-1")
            if encoding is not None or len(body) >= _OFF_LOOP_BYTES:
                return self._infer_decoding(model, t0, body, header_length, encoding, rid)
            req = decode_request(body, header_length, model.inputs, model.outputs, model.name)
            rid = req.id or rid
            timeout = req.timeout_s or self.config.request_timeout_s
            # a one-call plan without a deadline starts its stage right here
            executor = None if timeout or model.local_executor is None else model.local_executor()
            started = None if executor is None else executor.start(
                req.inputs if req.checked else executor.validate(req.inputs))
            if started is None:
                return self._infer_run(model, t0, req, rid, timeout)
            if isinstance(started, asyncio.Future):
                return InferCall(model, t0, req, rid, executor, started)
            assert executor is not None
            result = executor.finish(started)
        except Exception as exc:
            return self._failed(model, t0, exc, rid, None)
        return self._respond(model, t0, req, rid, result)

    def infer_done(self, call: InferCall, future: asyncio.Future[Any]) -> Reply | Coroutine[Any, Any, Reply]:
        """The reply to ``call`` once its (not cancelled) ``future`` is done; a coroutine when the
        answer is large enough to be encoded on a helper thread. Never raises."""
        try:
            result = call.executor.finish(future.result())
        except Exception as exc:
            return self._failed(call.model, call.t0, exc, call.rid, None)
        return self._respond(call.model, call.t0, call.req, call.rid, result)

    def infer_cancelled(self, call: InferCall) -> None:
        call.model.metrics.in_flight -= 1

    async def _infer_decoding(self, model: Model, t0: float, body: bytes, header_length: int | None,
                              encoding: bytes | None, rid: str | None) -> Reply:
        try:
            req = await self._decode_off_loop(model, body, header_length, encoding)
        except asyncio.CancelledError:
            model.metrics.in_flight -= 1
            raise
        except Exception as exc:
            return self._failed(model, t0, exc, rid, None)
        return await self._infer_run(model, t0, req, req.id or rid, req.timeout_s or self.config.request_timeout_s)

    async def _infer_run(self, model: Model, t0: float, req: Any, rid: str | None,
                         timeout: float | None) -> Reply:
        """An infer request through ``ainfer``: any plan, any deadline."""
        try:
            result = await model.pipeline.ainfer(req.inputs, timeout_s=timeout)
        except asyncio.CancelledError:
            model.metrics.in_flight -= 1
            raise
        except Exception as exc:
            return self._failed(model, t0, exc, rid, None)
        reply = self._respond(model, t0, req, rid, result)
        return reply if isinstance(reply, tuple) else await reply

    def _respond(self, model: Model, t0: float, req: Any, rid: str | None,
                 result: Any) -> Reply | Coroutine[Any, Any, Reply]:
        rungs = result.rungs
        try:
            size = _least_size(req, result, model.output_names)  # a lower bound, cheap
            if size < _OFF_LOOP_BYTES:
                out_headers, out = encode_response(model.name, req, result, model.output_names, rungs)
            elif size <= self.config.max_response_bytes:
                return self._respond_off_loop(model, t0, req, rid, result, size)
            else:
                out_headers, out = [], b""
        except Exception as exc:
            return self._failed(model, t0, exc, rid, rungs)
        return self._sized(model, t0, rid, rungs, out_headers, out, size)

    async def _respond_off_loop(self, model: Model, t0: float, req: Any, rid: str | None, result: Any,
                                size: int) -> Reply:
        try:
            out_headers, out = await self._encode_off_loop(model, req, result)
        except asyncio.CancelledError:
            model.metrics.in_flight -= 1
            raise
        except Exception as exc:
            return self._failed(model, t0, exc, rid, result.rungs)
        return self._sized(model, t0, rid, result.rungs, out_headers, out, size)

    def _sized(self, model: Model, t0: float, rid: str | None, rungs: Any,
               out_headers: list[tuple[bytes, bytes]], out: bytes, size: int) -> Reply:
        limit = self.config.max_response_bytes
        if len(out) > limit or size > limit:
            return self._observe(model, t0, plain_error(413, (
                f"the response would be over {max(size, len(out))} bytes, over this server's "
                f"limit of {limit} (--max-response-bytes); send fewer "
                "items per request or ask for fewer outputs")), "ResponseTooLarge", rid, rungs)
        return self._observe(model, t0, (200, out_headers, out), None, rid, rungs)

    def _failed(self, model: Model, t0: float, exc: Exception, rid: str | None, rungs: Any) -> Reply:
        reply, kind = error_reply(exc)
        if reply[0] >= 500 and isinstance(exc, RequestError):  # others: error_reply logged them
            log_error("POST", model.infer_path, model.name, reply[0], exc, rid)
        return self._observe(model, t0, reply, kind, rid, rungs)

    def _observe(self, model: Model, t0: float, reply: Reply, kind: str | None, rid: str | None,
                 rungs: Any) -> Reply:
        metrics = model.metrics
        metrics.in_flight -= 1
        latency = time.perf_counter() - t0
        metrics.observe(reply[0], latency, kind)
        if self.access is not None:
            self.access.infer("POST", model.infer_path, model.name, reply[0], latency, rid, rungs)
        return reply

    async def _encode_off_loop(self, model: Model, req: Any, result: Any) -> Any:
        if self._decoders is None:
            self._decoders = ThreadPoolExecutor(_DECODE_THREADS, thread_name_prefix="bw-decode")
        return await asyncio.get_running_loop().run_in_executor(
            self._decoders, encode_response, model.name, req, result, model.output_names, result.rungs)

    async def _decode_off_loop(self, model: Model, body: bytes, header_length: int | None,
                               encoding: bytes | None) -> Any:
        limit = self.config.max_body_bytes
        if encoding is not None and len(body) < _OFF_LOOP_COMPRESSED:
            body = _decompress(body, encoding, limit)
            encoding = None
        if encoding is None and len(body) < _OFF_LOOP_BYTES:
            return decode_request(body, header_length, model.inputs, model.outputs, model.name)

        def decode() -> Any:
            raw = body if encoding is None else _decompress(body, encoding, limit)
            return decode_request(raw, header_length, model.inputs, model.outputs, model.name)

        if self._decoders is None:
            self._decoders = ThreadPoolExecutor(_DECODE_THREADS, thread_name_prefix="bw-decode")
        return await asyncio.get_running_loop().run_in_executor(self._decoders, decode)

    # -- ASGI, for embedding the app in any ASGI server ----------------------------------
    async def _asgi_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = list(scope["headers"])
        path = scope["path"]
        reply: Reply | StreamReply
        refusal = self.refuse_early(path, headers)  # the key, before any body is read
        if refusal is not None:
            reply = refusal
        else:
            try:
                body = await _read_asgi_body(headers, receive, self.config.max_body_bytes)
            except _Disconnected:
                return
            except RequestError as exc:
                reply = error_reply(exc)[0]
            else:
                reply = await self.handle(scope["method"], path, headers, body)
        if isinstance(reply, StreamReply):
            from ._stream import write_asgi

            await write_asgi(reply, send)
            return
        status, out_headers, out = reply
        await send({"type": "http.response.start", "status": status,
                    "headers": [*out_headers, (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})


def _int_header(name: bytes, value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"bad {name.decode()} header {value!r}") from None


async def _read_asgi_body(headers: list[tuple[bytes, bytes]], receive: Receive, limit: int) -> bytes:
    for k, v in headers:
        if k == b"content-length" and _int_header(k, v) > limit:
            raise PayloadTooLarge(f"request body is {int(v)} bytes; this server accepts at most {limit} "
                                  "(--max-body-bytes)")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _least_size(req: Any, result: Any, names: tuple[str, ...]) -> int:
    """At least how many bytes the response body takes: a binary output its bytes, a JSON one
    two characters per element."""
    wanted = req.outputs if req.outputs is not None else [(n, req.binary_output) for n in names]
    total = 0
    for name, binary in wanted:
        arr = result[name]
        total += arr.nbytes if binary and arr.dtype.kind != "O" else 2 * arr.size
    return total


def _unauthorised() -> Reply:
    return plain_error(401, _NO_KEY, _CHALLENGE)


def _coding(value: bytes, seen: bytes | None) -> bytes | None:
    """The one content coding of a request body (None: identity). Two codings — two headers,
    or a list in one — are refused: each would multiply what a small body decodes to."""
    coding = value.strip().lower()
    if coding == b"identity":
        return seen
    if seen is not None or b"," in coding:
        raise InvalidInput("a request body may carry at most one Content-Encoding (gzip or deflate)")
    if coding not in (b"gzip", b"deflate"):
        raise InvalidInput(f"Content-Encoding {coding.decode(errors='replace')!r} is not supported; "
                           "use gzip, deflate or none")
    return coding


def _decompress(body: bytes, encoding: bytes, limit: int) -> bytes:
    wbits = {b"gzip": 31, b"deflate": 15}.get(encoding)
    if wbits is None:
        raise InvalidInput(f"Content-Encoding {encoding.decode(errors='replace')!r} is not supported; "
                           "use gzip, deflate or none")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the {encoding.decode()} body does not decompress: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed request body is over {limit} bytes (--max-body-bytes)")
    return out
