"""The local generation brick: ``llm: {transformers: DIR}`` in YAML, ``bw.llm.transformers(DIR)``.

Signature: ``prompt`` (BYTES) in; ``text`` (BYTES), ``finish_reason`` (BYTES: ``stop`` or
``length``), ``prompt_tokens`` and ``completion_tokens`` (INT64) out. Called plainly (``infer``,
the v2 front) it answers whole texts; streamed (``pipeline.stream``, the OpenAI and generate
fronts) each chunk carries the new text of every item, ``finish_reason`` empty until the last.
Requests share one decode batch (continuous batching, :mod:`._batcher`).

YAML fields (all optional but ``transformers``):

    llm:
      transformers: models/generator   # a Hugging Face causal-LM directory (config, weights, tokenizer)
      max_batch_size: 16               # sequences decoded together (rows of the batch)
      kv_budget_tokens: null           # bound on the padded KV cache, tokens (docs/llm.md); null = off
      max_queue: 256                   # sequences waiting for a row before Overloaded
      max_tokens: 64                   # default per request
      temperature: 0.0                 # default; 0 = greedy
      top_p: 1.0                       # default nucleus mass
      stop: []                         # default stop strings
      device: cpu                      # torch device
      torch_threads: null              # torch.set_num_threads; null = torch's default
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..bricks import BaseBrick, BrickSpec, ConfigKey
from ..errors import ConfigError, InvalidInput, ModelError
from ..spec import Signature, Tensors, TensorSpec
from ._batcher import Batcher, Sampling

__all__ = ["LlmBrick", "transformers"]

SIGNATURE = Signature(
    (TensorSpec("prompt", "BYTES", (-1,)),),
    (TensorSpec("text", "BYTES", (-1,)), TensorSpec("finish_reason", "BYTES", (-1,)),
     TensorSpec("prompt_tokens", "INT64", (-1,)), TensorSpec("completion_tokens", "INT64", (-1,))),
)
_OPTIONS = ("max_batch_size", "kv_budget_tokens", "max_queue", "max_tokens", "temperature", "top_p",
            "stop", "device", "torch_threads")
_PARAMETERS = ("max_tokens", "temperature", "top_p", "seed", "stop")


def _llm_schema() -> dict[str, Any]:
    nullable_int = {"type": ["integer", "null"], "minimum": 1}
    return {"type": "object", "required": ["transformers"], "additionalProperties": False, "properties": {
        "transformers": {"type": "string", "description": "a Hugging Face causal-LM directory"},
        "max_batch_size": {"type": "integer", "minimum": 1, "description": "sequences decoded together; 16"},
        "kv_budget_tokens": {**nullable_int, "description": "bound on the padded KV cache in tokens: "
                             "min(admitted, max_batch_size) x the longest prompt + max_tokens; null = off"},
        "max_queue": {"type": "integer", "minimum": 0, "description": "waiting sequences before Overloaded; 256"},
        "max_tokens": {"type": "integer", "minimum": 1, "description": "default per request; 64"},
        "temperature": {"type": "number", "minimum": 0, "description": "default; 0 = greedy"},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "default; 1.0"},
        "stop": {"type": "array", "items": {"type": "string"}, "description": "default stop strings"},
        "device": {"type": "string", "description": "torch device; cpu"},
        "torch_threads": {**nullable_int, "description": "torch.set_num_threads; null = torch's default"}}}


class LlmBrick(BaseBrick):
    """A causal LM with continuous batching; streams when the pipeline is streamed."""

    kind = "llm"
    config_keys = (ConfigKey("llm", _llm_schema(), "a local causal LM with continuous batching and "
                             "streaming: {transformers: DIR, max_batch_size, kv_budget_tokens, max_queue, "
                             "max_tokens, temperature, top_p, stop, device, torch_threads} (docs/llm.md)",
                             required=True),)
    streaming = True
    blocking = True

    def __init__(self, path: str | Path, *, name: str = "llm", max_batch_size: int = 16,
                 kv_budget_tokens: int | None = None, max_queue: int = 256, max_tokens: int = 64,
                 temperature: float = 0.0, top_p: float = 1.0, stop: list[str] | tuple[str, ...] = (),
                 device: str = "cpu", torch_threads: int | None = None) -> None:
        super().__init__(name, SIGNATURE)
        self.path = Path(path)
        self._config: dict[str, Any] | None = None
        self._base_dir: Path = Path(".")
        self.options: dict[str, Any] = {"max_batch_size": max_batch_size, "kv_budget_tokens": kv_budget_tokens,
                        "max_queue": max_queue, "max_tokens": max_tokens, "temperature": temperature,
                        "top_p": top_p, "stop": list(stop), "device": device, "torch_threads": torch_threads}
        self.defaults = Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=tuple(stop))
        self.device = device
        self.batcher: Batcher | None = None
        self.tokenizer: Any = None
        self.model_name = self.path.name

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> LlmBrick:
        entry = config.get("llm", config)
        if not isinstance(entry, Mapping) or "transformers" not in entry:
            raise ConfigError(f"brick {name!r}: llm needs {{transformers: DIR}} (a Hugging Face causal-LM "
                              f"directory), got {entry!r}")
        unknown = sorted(set(entry) - {"transformers", *_OPTIONS})
        if unknown:
            raise ConfigError(f"brick {name!r}: unknown llm option(s) {unknown}; known: "
                              f"{['transformers', *_OPTIONS]}")
        path = Path(entry["transformers"])
        brick = cls(path if path.is_absolute() else base_dir / path, name=name,
                    **{k: entry[k] for k in _OPTIONS if k in entry})
        brick._config, brick._base_dir = dict(config), base_dir  # for spec()
        return brick

    def spec(self) -> BrickSpec:
        config = self._config or {"llm": {"transformers": str(self.path), **self.options}}
        return BrickSpec("llm", self.name, config, str(self._base_dir))

    # -- lifecycle ---------------------------------------------------------------------
    def _load(self) -> None:
        torch = _lazy_import("torch")
        hf = _lazy_import("transformers")
        if not self.path.is_dir():
            raise ConfigError(f"brick {self.name!r}: no model directory at {self.path}")
        if self.options["torch_threads"]:
            torch.set_num_threads(int(self.options["torch_threads"]))
        try:
            self.tokenizer = hf.AutoTokenizer.from_pretrained(self.path)
            model = hf.AutoModelForCausalLM.from_pretrained(self.path).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"brick {self.name!r}: cannot load a causal LM from {self.path}: {exc}") from exc
        self.batcher = Batcher(model, self.tokenizer, max_batch_size=int(self.options["max_batch_size"]),
                               kv_budget_tokens=self.options["kv_budget_tokens"],
                               max_queue=int(self.options["max_queue"]), device=self.device)
        self.batcher.start()

    def warmup(self) -> None:
        self({"prompt": np.array(["warm up"], dtype=object)}, {"max_tokens": 2})

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        super().close()

    def stream_stats(self) -> dict[str, Any]:
        return self.batcher.stats() if self.batcher is not None else {}

    # -- requests ----------------------------------------------------------------------
    def sampling(self, parameters: Mapping[str, Any] | None) -> Sampling:
        """The brick's defaults overridden by a request's parameters (checked: InvalidInput)."""
        p = dict(parameters or {})
        unknown = sorted(set(p) - set(_PARAMETERS))
        if unknown:
            raise InvalidInput(f"unknown generation parameter(s) {unknown}; known: {list(_PARAMETERS)}")
        d = self.defaults
        try:
            max_tokens = d.max_tokens if p.get("max_tokens") is None else _int(p["max_tokens"], "max_tokens")
            temperature = d.temperature if p.get("temperature") is None else float(p["temperature"])
            top_p = d.top_p if p.get("top_p") is None else float(p["top_p"])
            seed = None if p.get("seed") is None else _int(p["seed"], "seed")
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"bad generation parameter: {exc}") from None
        stop = p.get("stop", d.stop)
        if stop is None:
            stop = ()
        if isinstance(stop, str):
            stop = (stop,)
        if not isinstance(stop, list | tuple) or not all(isinstance(s, str) and s for s in stop):
            raise InvalidInput(f"stop must be a string or a list of non-empty strings, got {stop!r}")
        if not 0 <= temperature <= 10:
            raise InvalidInput(f"temperature must be between 0 and 10, got {temperature}")
        if not 0 < top_p <= 1:
            raise InvalidInput(f"top_p must be in (0, 1], got {top_p}")
        return Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=tuple(stop))

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            self.load()
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, messages: list[Mapping[str, str]]) -> str:
        """The prompt for chat ``messages``: the tokenizer's chat template when it has one, else
        ``role: content`` lines and ``assistant:``."""
        if self.tokenizer is None:
            self.load()
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def _call(self, inputs: Tensors, parameters: Mapping[str, Any] | None = None) -> Tensors:
        """Whole answers (blocking; runs on the stage's worker thread)."""
        assert self.batcher is not None
        prompts = [_text(p) for p in inputs["prompt"]]
        sampling = self.sampling(parameters)
        done = [threading.Event() for _ in prompts]
        results: list[tuple[str, int, str]] = [("", 0, "")] * len(prompts)
        parts: list[list[str]] = [[] for _ in prompts]
        seqs = []

        def sink_for(i: int) -> Any:
            def sink(delta: str, n: int, finish: str | None) -> None:
                parts[i].append(delta)
                if finish is not None:
                    results[i] = ("".join(parts[i]), n, finish)
                    done[i].set()
            return sink

        try:
            for i, prompt in enumerate(prompts):
                seqs.append(self.batcher.submit(self.encode(prompt), sampling, sink_for(i)))
            for event in done:
                event.wait()
        finally:
            for seq in seqs:
                self.batcher.cancel(seq)
        for _, _, finish in results:
            if finish.startswith("error"):
                raise ModelError(f"brick {self.name!r}: {finish}")
        return {"text": np.array([r[0] for r in results], dtype=object),
                "finish_reason": np.array([r[2] for r in results], dtype=object),
                "prompt_tokens": np.array([len(s.prompt) for s in seqs], dtype=np.int64),
                "completion_tokens": np.array([r[1] for r in results], dtype=np.int64)}

    def __call__(self, inputs: Tensors, parameters: Mapping[str, Any] | None = None) -> Tensors:
        if not self._loaded:
            self.load()
        return self._call(inputs, parameters)

    async def stream(self, inputs: Tensors, parameters: Mapping[str, Any]) -> AsyncIterator[Tensors]:
        """Chunks as tokens arrive: each carries every item's new text (empty for an item with
        nothing new). Closing the iterator cancels the sequences (their rows free at once)."""
        if not self._loaded:
            await asyncio.to_thread(self.load)
        assert self.batcher is not None
        prompts = [_text(p) for p in inputs["prompt"]]
        sampling = self.sampling(parameters)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, str, int, str | None]] = asyncio.Queue()
        seqs = []
        try:
            for i, prompt in enumerate(prompts):
                seqs.append(self.batcher.submit(self.encode(prompt), sampling, _LoopSink(loop, events, i)))
            n_items = len(prompts)
            counts = [0] * n_items
            finish: list[str] = [""] * n_items
            live = n_items
            prompt_tokens = np.array([len(s.prompt) for s in seqs], dtype=np.int64)
            while live:
                texts = [""] * n_items
                item, delta, n, reason = await events.get()
                while True:  # everything that arrived already goes into one chunk
                    texts[item] += delta
                    counts[item] = n
                    if reason is not None:
                        if reason.startswith("error"):
                            raise ModelError(f"brick {self.name!r}: {reason}")
                        finish[item] = reason
                        live -= 1
                    if events.empty():
                        break
                    item, delta, n, reason = events.get_nowait()
                yield {"text": np.array(texts, dtype=object),
                       "finish_reason": np.array(finish, dtype=object),
                       "prompt_tokens": prompt_tokens,
                       "completion_tokens": np.array(counts, dtype=np.int64)}
        finally:
            for seq in seqs:
                self.batcher.cancel(seq)


class _LoopSink:
    """Runs on ``loop`` (the batcher posts a step's events once per loop): queue the event."""

    __slots__ = ("events", "index", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, events: asyncio.Queue[Any], index: int) -> None:
        self.loop, self.events, self.index = loop, events, index

    def __call__(self, delta: str, n: int, finish: str | None) -> None:
        self.events.put_nowait((self.index, delta, n, finish))


def transformers(path: str | Path, *, name: str = "llm", **options: Any) -> Any:
    """``bw.llm.transformers(DIR, max_batch_size=16, ...)``: a graph node for an llm brick."""
    from ..graph import brick

    stage = {k: options.pop(k) for k in list(options) if k not in _OPTIONS}
    return brick(LlmBrick(path, name=name, **options), **stage)


def _lazy_import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{module} is not installed; install it with: pip install 'brickwork[hf]'") from exc


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)
