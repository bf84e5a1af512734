"""The OpenAI-compatible front and Triton's generate extension, for any served pipeline whose
signature fits: one text (BYTES) input and a text output → chat/completions and generate;
one text input and a float vector output ``[-1, D]`` → embeddings.

    GET  /v1/models                      the fitting models
    POST /v1/chat/completions            stream or not (SSE ending ``data: [DONE]``)
    POST /v1/completions                 stream or not
    POST /v1/embeddings                  ``encoding_format`` float or base64
    GET  /v1/tools                       every model as a tool, OpenAI tool format (see ``_tools``)
    POST /v2/models/{m}/generate         Triton generate: ``{"text_input": ..., "parameters": {...}}``
    POST /v2/models/{m}/generate_stream  the same as Server-Sent Events

Generation parameters (``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``) reach the
pipeline's streaming brick. Chat messages become the prompt through the streaming brick's
``chat_prompt`` when it reads the pipeline's input directly; otherwise (a RAG pipeline whose
first stage retrieves) the last user message is the input. Usage counts come from the llm
brick's ``prompt_tokens``/``completion_tokens`` outputs when the pipeline publishes them.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import numpy as np
import orjson

from ..errors import InvalidInput, NotFound, RequestError
from ..pipeline import Pipeline
from ..plan import Call, stream_split
from ._errors import JSON, Reply, error_reply
from ._metrics import ModelMetrics
from ._stream import StreamReply

__all__ = ["LlmFront", "LlmMetrics"]

_GEN_PARAMS = ("max_tokens", "temperature", "top_p", "seed", "stop")


class _Fit:
    """How a pipeline fits the OpenAI shapes."""

    __slots__ = ("chat_brick", "input", "kind", "pipeline", "text", "vector")

    def __init__(self, pipeline: Pipeline) -> None:
        plan = pipeline.plan
        self.pipeline = pipeline
        texts_in = [s for s in plan.inputs if s.dtype == "BYTES"]
        self.input = texts_in[0].name if len(plan.inputs) == 1 and texts_in else None
        texts_out = [s.name for s in plan.outputs if s.dtype == "BYTES" and s.name != "finish_reason"]
        self.text = "text" if "text" in texts_out else (texts_out[0] if texts_out else None)
        vectors = [s.name for s in plan.outputs if s.dtype in ("FP32", "FP64", "FP16") and len(s.shape) == 2]
        self.vector = vectors[0] if vectors else None
        self.kind = ("generate" if self.input and self.text else
                     "embeddings" if self.input and self.vector else None)
        self.chat_brick: Any = None
        try:
            split = stream_split(plan)
        except Exception:  # a shape compile() refused cannot be served anyway
            split = None
        if (split is not None and isinstance(split.call, Call) and not split.prefix
                and any(b.source == self.input for b in split.call.bindings)):
            brick = plan.stages[split.call.stage].brick
            self.chat_brick = brick if callable(getattr(brick, "chat_prompt", None)) else None


class LlmMetrics:
    """Where the front counts: each model's :class:`._metrics.ModelMetrics` slots (shared by
    the workers of ``--workers N``, so ``/metrics`` sums them); a model without slots (none
    given) is not counted."""

    def __init__(self, lookup: Callable[[str], ModelMetrics | None] | None = None) -> None:
        self.lookup = lookup or (lambda name: None)

    def request(self, model: str, endpoint: str) -> None:
        if (m := self.lookup(model)) is not None:
            m.llm_request(endpoint)

    def usage(self, model: str, prompt: int, completion: int) -> None:
        if (m := self.lookup(model)) is not None:
            m.llm_usage(prompt, completion)

    def stream(self, model: str, ttft_s: float | None, tokens: int, seconds: float) -> None:
        if (m := self.lookup(model)) is not None:
            m.llm_stream(ttft_s, tokens, seconds)


def oai_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
              extra: list[tuple[bytes, bytes]] | None = None) -> Reply:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return status, [JSON, *(extra or [])], orjson.dumps(body)


def _from_exc(exc: BaseException) -> Reply:
    status, headers, body = error_reply(exc)[0]
    message = orjson.loads(body).get("error", str(exc)) if body else str(exc)
    return oai_error(status, str(message), extra=[h for h in headers if h[0] != b"content-type"])


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class LlmFront:
    def __init__(self, pipelines: Mapping[str, Pipeline],
                 metrics: Callable[[str], ModelMetrics | None] | None = None) -> None:
        self.fits = {name: _Fit(p) for name, p in pipelines.items()}
        self.metrics = LlmMetrics(metrics)
        self.created = int(time.time())

    def refresh(self, pipelines: Mapping[str, Pipeline]) -> None:
        """Follow the served models (the repository may load, unload or reload them)."""
        if {n: id(f.pipeline) for n, f in self.fits.items()} != {n: id(p) for n, p in pipelines.items()}:
            self.fits = {name: _Fit(p) for name, p in pipelines.items()}

    # -- routing -----------------------------------------------------------------------
    async def handle(self, method: str, path: str, body: bytes) -> Reply | StreamReply:
        try:
            if path == "/v1/models":
                return self._models()
            if path == "/v1/tools":
                from ._tools import openai_tools

                return 200, [JSON], orjson.dumps({"object": "list", "data": openai_tools(
                    {n: f.pipeline for n, f in self.fits.items()})})
            if method != "POST":
                return oai_error(405, f"{path} takes POST", extra=[(b"allow", b"POST")])
            req = _json(body)
            if path == "/v1/chat/completions":
                return await self._generate(req, chat=True)
            if path == "/v1/completions":
                return await self._generate(req, chat=False)
            if path == "/v1/embeddings":
                return await self._embeddings(req)
            if path.startswith("/v2/models/"):
                name, _, action = path[11:].partition("/")
                return await self._triton(name, action, req)
            return oai_error(404, f"no endpoint {method} {path}; the OpenAI front has /v1/models, "
                                  "/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/tools")
        except RequestError as exc:
            return _from_exc(exc)

    def _models(self) -> Reply:
        data = [{"id": n, "object": "model", "created": self.created, "owned_by": "brickwork",
                 "capabilities": [f.kind]} for n, f in self.fits.items() if f.kind]
        return 200, [JSON], orjson.dumps({"object": "list", "data": data})

    def _fit(self, req: Mapping[str, Any], kind: str) -> _Fit:
        model = req.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput(f"'model' must be a model name, got {model!r}")
        fit = self.fits.get(model)
        if fit is None:
            raise NotFound(f"unknown model {model!r}; this server has {sorted(self.fits)}")
        if fit.kind != kind:
            raise InvalidInput(f"model {model!r} does not fit {kind}: its signature is "
                               f"{fit.pipeline.plan.signature} (generation needs one text input and a "
                               "text output; embeddings one text input and a float [-1, D] output)")
        return fit

    # -- generation --------------------------------------------------------------------
    async def _generate(self, req: Mapping[str, Any], *, chat: bool) -> Reply | StreamReply:
        fit = self._fit(req, "generate")
        prompt: Any
        if chat:
            prompt = _chat_prompt(fit, req.get("messages"))
        else:
            prompt = req.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1:
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise InvalidInput(f"'prompt' must be a string, got {type(prompt).__name__}")
        if req.get("n", 1) != 1:
            raise InvalidInput(f"n={req.get('n')!r} is not supported; ask for n=1")
        params = _gen_params(req, "max_completion_tokens" if chat else None)
        stream = req.get("stream", False)
        if not isinstance(stream, bool):
            raise InvalidInput(f"'stream' must be true or false, got {stream!r}")
        opts = req.get("stream_options") or {}
        include_usage = isinstance(opts, Mapping) and bool(opts.get("include_usage"))
        name = fit.pipeline.name
        self.metrics.request(name, "chat" if chat else "completions")
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        kind = "chat.completion" if chat else "text_completion"
        chunks = self._run(fit, prompt, params, streamed=stream)
        if not stream:
            text, finish, usage = [], "stop", None
            async for delta, reason, use in chunks:
                text.append(delta)
                finish, usage = reason or finish, use or usage
            usage = usage or _estimate(prompt, "".join(text))
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": "".join(text)}
            else:
                choice["text"] = "".join(text)
            return 200, [JSON], orjson.dumps({"id": ident, "object": kind, "created": int(time.time()),
                                              "model": name, "choices": [choice], "usage": usage})
        first = await _first(chunks)  # errors before the first token still get a status code
        return StreamReply(self._sse(first, chunks, ident, name, chat, include_usage))

    async def _sse(self, first: Any, chunks: AsyncGenerator[Any, None], ident: str, name: str, chat: bool,
                   include_usage: bool) -> AsyncGenerator[bytes, None]:
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        usage = None

        def piece(delta: str | None, finish: str | None, role: bool = False) -> bytes:
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            if chat:
                choice["delta"] = ({"role": "assistant", "content": ""} if role else
                                   ({"content": delta} if delta is not None else {}))
            else:
                choice["text"] = delta or ""
            return _sse({"id": ident, "object": kind, "created": created, "model": name, "choices": [choice]})

        try:
            if chat:
                yield piece(None, None, role=True)
            pending = [first] if first is not None else []
            finish = "stop"
            while True:
                if pending:
                    delta, reason, use = pending.pop()
                else:
                    try:
                        delta, reason, use = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                usage = use or usage
                finish = reason or finish
                if delta:
                    yield piece(delta, None)
            yield piece(None, finish)
            if include_usage:
                yield _sse({"id": ident, "object": kind, "created": created, "model": name, "choices": [],
                            "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})
        except RequestError as exc:  # mid-stream: the status is sent; say what broke in the stream
            yield _sse({"error": {"message": exc.message, "type": "server_error", "code": exc.status}})
        finally:
            await chunks.aclose()
        yield b"data: [DONE]\n\n"

    async def _run(self, fit: _Fit, prompt: str, params: dict[str, Any], *, streamed: bool
                   ) -> AsyncGenerator[tuple[str, str | None, dict[str, int] | None], None]:
        """(text delta, finish reason, usage) per chunk; records usage, and for a ``streamed``
        answer its time to first token and tokens/s."""
        assert fit.input is not None and fit.text is not None
        name = fit.pipeline.name
        t0 = time.perf_counter()
        ttft = None
        usage = None
        stream = fit.pipeline.astream({fit.input: np.array([prompt], dtype=object)}, parameters=params)
        try:
            async for chunk in stream:
                delta = _str(chunk[fit.text][0])
                if ttft is None and delta:
                    ttft = time.perf_counter() - t0
                finish = _str(chunk["finish_reason"][0]) if "finish_reason" in chunk else None
                if "prompt_tokens" in chunk and "completion_tokens" in chunk:
                    p, c = int(chunk["prompt_tokens"][0]), int(chunk["completion_tokens"][0])
                    usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
                yield delta, finish or None, usage
        finally:
            await stream.aclose()
            if usage is not None:
                self.metrics.usage(name, usage["prompt_tokens"], usage["completion_tokens"])
            if usage is not None and streamed:
                first = ttft if ttft is not None else 0.0
                self.metrics.stream(name, ttft, usage["completion_tokens"], time.perf_counter() - t0 - first)

    # -- embeddings --------------------------------------------------------------------
    async def _embeddings(self, req: Mapping[str, Any]) -> Reply:
        fit = self._fit(req, "embeddings")
        texts = req.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("'input' must be a string or a non-empty list of strings "
                               "(token arrays are not supported)")
        encoding = req.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise InvalidInput(f"encoding_format must be 'float' or 'base64', got {encoding!r}")
        assert fit.input is not None and fit.vector is not None
        self.metrics.request(fit.pipeline.name, "embeddings")
        out = await fit.pipeline.ainfer({fit.input: np.array(texts, dtype=object)})
        vectors = np.asarray(out[fit.vector], dtype=np.float32)
        data = []
        for i, v in enumerate(vectors):
            emb: Any = (base64.b64encode(v.astype("<f4").tobytes()).decode() if encoding == "base64"
                        else v.tolist())
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(t.split()) for t in texts)
        self.metrics.usage(fit.pipeline.name, tokens, 0)
        return 200, [JSON], orjson.dumps({"object": "list", "data": data, "model": fit.pipeline.name,
                                          "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # -- Triton's generate extension -----------------------------------------------------
    async def _triton(self, name: str, action: str, req: Mapping[str, Any]) -> Reply | StreamReply:
        fit = self.fits.get(name)
        if fit is None:
            raise NotFound(f"unknown model {name!r}; this server has {sorted(self.fits)}")
        if fit.kind != "generate":
            raise InvalidInput(f"model {name!r} does not fit generate (one text input, a text output): "
                               f"its signature is {fit.pipeline.plan.signature}")
        assert fit.input is not None
        text = req.get("text_input", req.get(fit.input))
        if not isinstance(text, str):
            raise InvalidInput(f"generate needs 'text_input' (or {fit.input!r}) as a string, got {text!r}")
        params = req.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise InvalidInput(f"'parameters' must be an object, got {params!r}")
        unknown = sorted(set(params) - {*_GEN_PARAMS, "stream"})
        if unknown:
            raise InvalidInput(f"unknown generation parameter(s) {unknown}; known: {[*_GEN_PARAMS]}")
        params = _gen_params({k: v for k, v in params.items() if k != "stream"}, None)
        self.metrics.request(name, action)
        chunks = self._run(fit, text, params, streamed=action == "generate_stream")
        if action == "generate":
            parts, finish, usage = [], None, None
            async for delta, reason, use in chunks:
                parts.append(delta)
                finish, usage = reason or finish, use or usage
            out: dict[str, Any] = {"model_name": name, "model_version": "1", "text_output": "".join(parts)}
            if finish:
                out["finish_reason"] = finish
            if usage:
                out["usage"] = usage
            return 200, [JSON], orjson.dumps(out)
        first = await _first(chunks)

        async def events() -> AsyncGenerator[bytes, None]:
            try:
                pending = [first] if first is not None else []
                while True:
                    if pending:
                        delta, reason, _ = pending.pop()
                    else:
                        try:
                            delta, reason, _ = await chunks.__anext__()
                        except StopAsyncIteration:
                            return
                    item: dict[str, Any] = {"model_name": name, "model_version": "1", "text_output": delta}
                    if reason:
                        item["finish_reason"] = reason
                    yield _sse(item)
            except RequestError as exc:
                yield _sse({"error": exc.message})
            finally:
                await chunks.aclose()

        return StreamReply(events())


async def _first(chunks: AsyncGenerator[Any, None]) -> Any:
    """The first chunk (None when there is none), so that an error raised before any token —
    overload, a bad parameter — is answered with its own status, not inside a 200 stream."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return None
    except BaseException:
        await chunks.aclose()
        raise


def _json(body: bytes) -> dict[str, Any]:
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None
    if not isinstance(req, dict):
        raise InvalidInput(f"the body must be a JSON object, got {type(req).__name__}")
    return req


def _gen_params(req: Mapping[str, Any], alias: str | None) -> dict[str, Any]:
    params = {k: req[k] for k in _GEN_PARAMS if req.get(k) is not None}
    if alias and req.get(alias) is not None:
        params["max_tokens"] = req[alias]
    mt = params.get("max_tokens")
    if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
        raise InvalidInput(f"max_tokens must be a positive integer, got {mt!r}")
    for key in ("temperature", "top_p"):
        v = params.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise InvalidInput(f"{key} must be a number, got {v!r}")
    return params


def _chat_prompt(fit: _Fit, messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("'messages' must be a non-empty list of {role, content} objects")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise InvalidInput(f"messages[{i}] must be an object with a 'role' string, got {m!r}")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        if not isinstance(content, str):
            raise InvalidInput(f"messages[{i}].content must be a string, got {type(content).__name__}")
        clean.append({"role": m["role"], "content": content})
    if fit.chat_brick is not None:
        return str(fit.chat_brick.chat_prompt(clean))
    users = [m["content"] for m in clean if m["role"] == "user"]
    if not users:
        raise InvalidInput("'messages' has no user message")
    return users[-1]


def _estimate(prompt: str, text: str) -> dict[str, int]:
    p, c = len(prompt.split()), len(text.split())
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _str(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
