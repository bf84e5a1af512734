"""The remote LLM brick: ``openai: {base_url, model}`` for any OpenAI-compatible server.

``mode: chat`` (default): the same signature as the local llm brick (``prompt`` in; ``text``,
``finish_reason``, ``prompt_tokens``, ``completion_tokens`` out), so the two stand in for each
other in a fallback ladder; it streams (``stream=True`` upstream) when the pipeline streams.
``mode: embeddings``: ``text`` in, ``embedding`` FP32 ``[-1, dim]`` out.

The official ``openai`` client runs with ``max_retries=0``: the stage's ``retries``, ``timeout_s``,
breaker and fallback are the only ones. Every failure (unreachable, timeout, an error status)
is an :class:`~brickwork.UpstreamError` (502, machinery: it triggers retries and fallbacks).

    openai:
      base_url: http://127.0.0.1:8000/v1   # the server's /v1 root
      model: gen                           # the model name the server knows
      mode: chat                           # chat | embeddings
      api_key_env: OPENAI_API_KEY          # the environment variable with the key; null = none
      call_timeout_s: 30.0                 # one HTTP call (seconds)
      dim: null                            # embeddings: the vector length, if known
      max_tokens: null                     # chat: default per request; null = the server's
      temperature: null
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..bricks import BaseBrick, BrickSpec, ConfigKey
from ..errors import ConfigError, InvalidInput, UpstreamError
from ..spec import Signature, Tensors, TensorSpec
from ._brick import SIGNATURE

__all__ = ["OpenAIBrick"]

_KEYS = ("base_url", "model", "mode", "api_key_env", "call_timeout_s", "dim", "max_tokens", "temperature")


class OpenAIBrick(BaseBrick):
    kind = "openai"
    config_keys = (ConfigKey("openai", {
        "type": "object", "required": ["base_url", "model"], "additionalProperties": False, "properties": {
            "base_url": {"type": "string", "description": "the server's /v1 root"},
            "model": {"type": "string"},
            "mode": {"enum": ["chat", "embeddings"]},
            "api_key_env": {"type": ["string", "null"]},
            "call_timeout_s": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "dim": {"type": ["integer", "null"], "minimum": 1},
            "max_tokens": {"type": ["integer", "null"], "minimum": 1},
            "temperature": {"type": ["number", "null"], "minimum": 0}}},
        "a model on an OpenAI-compatible server: {base_url, model, mode: chat|embeddings, api_key_env, "
        "call_timeout_s, dim, max_tokens, temperature} (docs/llm.md)", required=True),)
    blocking = True

    def __init__(self, base_url: str, model: str, *, name: str = "openai", mode: str = "chat",
                 api_key_env: str | None = None, call_timeout_s: float | None = 30.0, dim: int | None = None,
                 max_tokens: int | None = None, temperature: float | None = None) -> None:
        if mode not in ("chat", "embeddings"):
            raise ConfigError(f"openai brick {name!r}: mode must be 'chat' or 'embeddings', got {mode!r}")
        sig = SIGNATURE if mode == "chat" else Signature(
            (TensorSpec("text", "BYTES", (-1,)),), (TensorSpec("embedding", "FP32", (-1, dim or -1)),))
        super().__init__(name, sig)
        self.base_url, self.model, self.mode = base_url.rstrip("/"), model, mode
        self.api_key_env, self.call_timeout_s = api_key_env, call_timeout_s
        self.defaults = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None}
        self.streaming = mode == "chat"
        self.options = {"base_url": base_url, "model": model, "mode": mode, "api_key_env": api_key_env,
                        "call_timeout_s": call_timeout_s, "dim": dim, "max_tokens": max_tokens,
                        "temperature": temperature}
        self._sync: Any = None
        self._async: Any = None

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> OpenAIBrick:
        entry = config.get("openai", config)
        if not isinstance(entry, Mapping) or "base_url" not in entry or "model" not in entry:
            raise ConfigError(f"brick {name!r}: openai needs {{base_url: URL, model: NAME}}, got {entry!r}")
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise ConfigError(f"brick {name!r}: unknown openai option(s) {unknown}; known: {list(_KEYS)}")
        return cls(name=name, **dict(entry))

    def spec(self) -> BrickSpec:
        return BrickSpec("openai", self.name, {"openai": dict(self.options)})

    def _clients(self) -> tuple[Any, Any]:
        if self._sync is None:
            try:
                import openai
            except ImportError as exc:
                raise ConfigError("the openai brick needs the openai client: pip install openai") from exc
            key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
            common: dict[str, Any] = {"base_url": self.base_url, "api_key": key or "none", "max_retries": 0,
                      "timeout": self.call_timeout_s}
            self._sync, self._async = openai.OpenAI(**common), openai.AsyncOpenAI(**common)
        return self._sync, self._async

    def _load(self) -> None:
        self._clients()

    def warmup(self) -> None:  # a remote model needs no warm-up, and may be down at start
        return

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
        self._sync = self._async = None
        super().close()

    def _upstream(self, exc: Exception) -> UpstreamError:
        status = getattr(exc, "status_code", None)
        return UpstreamError(f"openai brick {self.name!r} ({self.base_url}, model {self.model!r}): "
                             f"{type(exc).__name__}: {exc}", status)

    def _params(self, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        p = {**self.defaults, **{k: v for k, v in (parameters or {}).items() if v is not None}}
        unknown = sorted(set(p) - {"max_tokens", "temperature", "top_p", "seed", "stop"})
        if unknown:
            raise InvalidInput(f"unknown generation parameter(s) {unknown}")
        return p

    def _call(self, inputs: Tensors, parameters: Mapping[str, Any] | None = None) -> Tensors:
        client, _ = self._clients()
        import openai

        try:
            if self.mode == "embeddings":
                texts = [_text(t) for t in inputs["text"]]
                out = client.embeddings.create(model=self.model, input=texts)
                return {"embedding": np.array([d.embedding for d in out.data], dtype=np.float32)}
            texts, finish, used_p, used_c = [], [], [], []
            for prompt in inputs["prompt"]:
                r = client.chat.completions.create(model=self.model, **self._params(parameters),
                                                   messages=[{"role": "user", "content": _text(prompt)}])
                texts.append(r.choices[0].message.content or "")
                finish.append(r.choices[0].finish_reason or "stop")
                used_p.append(r.usage.prompt_tokens if r.usage else 0)
                used_c.append(r.usage.completion_tokens if r.usage else 0)
        except openai.OpenAIError as exc:
            raise self._upstream(exc) from exc
        return {"text": np.array(texts, dtype=object), "finish_reason": np.array(finish, dtype=object),
                "prompt_tokens": np.array(used_p, dtype=np.int64),
                "completion_tokens": np.array(used_c, dtype=np.int64)}

    def __call__(self, inputs: Tensors, parameters: Mapping[str, Any] | None = None) -> Tensors:
        if not self._loaded:
            self.load()
        return self._call(inputs, parameters)

    async def stream(self, inputs: Tensors, parameters: Mapping[str, Any]) -> AsyncIterator[Tensors]:
        """One item at a time upstream (``stream=True``); chunks as the server sends them."""
        _, client = self._clients()
        import openai

        prompts = [_text(p) for p in inputs["prompt"]]
        n = len(prompts)
        for i, prompt in enumerate(prompts):
            count, prompt_tokens = 0, 0
            try:
                upstream = await client.chat.completions.create(
                    model=self.model, stream=True, stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": prompt}], **self._params(parameters))
                try:
                    finish = ""
                    async for chunk in upstream:
                        if chunk.usage:
                            prompt_tokens, count = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                        if not chunk.choices:
                            continue
                        delta = chunk.choices[0].delta.content or ""
                        finish = chunk.choices[0].finish_reason or finish
                        if delta:
                            count += 0 if chunk.usage else 1
                            yield _chunk(n, i, delta, "", prompt_tokens, count)
                    yield _chunk(n, i, "", finish or "stop", prompt_tokens, count)
                finally:
                    await upstream.close()  # a consumer that left closes the upstream stream too
            except openai.OpenAIError as exc:
                raise self._upstream(exc) from exc


def _chunk(n: int, i: int, delta: str, finish: str, prompt_tokens: int, count: int) -> Tensors:
    text = np.array([""] * n, dtype=object)
    text[i] = delta
    reasons = np.array([""] * n, dtype=object)
    reasons[i] = finish
    p = np.zeros(n, dtype=np.int64)
    c = np.zeros(n, dtype=np.int64)
    p[i], c[i] = prompt_tokens, count
    return {"text": text, "finish_reason": reasons, "prompt_tokens": p, "completion_tokens": c}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
