"""Continuous batching for a Hugging Face causal LM (the Orca/vLLM idea, on a padded batch cache).

One decode thread owns the model. A request is a :class:`Sequence`; it waits in a queue until a
row is free, is prefilled with the other newcomers in one padded forward pass (its first token
is sampled then: time to first token does not wait for the batch), and joins the running batch
at the next decode step. Every step runs one
forward pass over all live rows; a sequence that finishes (end of text, ``max_tokens``, a stop
string, or its consumer gone) leaves the batch at once.

The KV cache is one padded tensor pair per layer, ``[rows, heads, T, head_dim]``, left-padded so
that every row's next token lands in the same column; an attention mask hides the padding and
``position_ids`` give each row its own positions (the results equal running each sequence alone,
checked in the tests). When rows leave, columns that only padding uses are trimmed. A KV budget
in tokens refuses a request with ``Overloaded`` before it could run the machine out of memory.
It bounds the padded cache, not the sum of the sequences: each admitted sequence (running or
waiting) may reach prompt + ``max_tokens`` tokens, and every row is as wide as the longest, so
the cache can reach min(admitted, ``max_batch_size``) x the longest such reservation
(``kv_bound_tokens`` in the stats); a request is refused when that would pass the budget.
``bench/llm_kv.py`` measures this strategy against per-sequence caches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, Overloaded

log = logging.getLogger("brickwork.llm")

__all__ = ["Batcher", "Sampling", "Sequence"]


@dataclass(frozen=True, slots=True)
class Sampling:
    """How one sequence decodes. ``temperature`` 0 is greedy; ``seed`` None draws one."""

    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


# (text delta, tokens generated so far, finish reason or None)
Sink = Callable[[str, int, str | None], None]


class Sequence:
    __slots__ = ("cancelled", "emitted", "finish", "first_token_at", "generator", "ids", "prefix_at", "prompt",
                 "read_at", "sampling", "sink", "submitted_at", "text")

    def __init__(self, prompt: list[int], sampling: Sampling, sink: Sink) -> None:
        self.prompt = prompt
        self.sampling = sampling
        self.sink = sink
        self.ids: list[int] = []
        self.text = ""
        self.emitted = 0
        self.finish: str | None = None
        self.cancelled = False
        self.generator: Any = None
        self.submitted_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.prefix_at = 0  # incremental detokenization window: ids[prefix_at:read_at] already read
        self.read_at = 0

    @property
    def reserved(self) -> int:
        return len(self.prompt) + self.sampling.max_tokens


class Batcher:
    """The decode loop on its own thread; ``submit`` and ``cancel`` are thread-safe."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 16,
                 kv_budget_tokens: int | None = None, max_queue: int = 256, device: str = "cpu") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.kv_budget_tokens = kv_budget_tokens
        self.max_queue = max_queue
        self.device = device
        self.context = int(getattr(model.config, "n_positions", None)
                           or getattr(model.config, "max_position_embeddings", None) or 2048)
        eos = getattr(tokenizer, "eos_token_id", None)
        self.eos = eos if isinstance(eos, int) else None
        self._lock = threading.Condition()
        self._waiting: deque[Sequence] = deque()
        self._rows: list[Sequence] = []
        self._kv: list[tuple[Any, Any]] = []  # per layer (keys, values) [rows, heads, T, dim]
        self._mask: Any = None  # [rows, T] 1 = real token
        self._reserved = 0  # the admitted sequences' prompt + max_tokens, summed
        self._admitted: set[Sequence] = set()  # running or waiting, until released
        self._stop = False
        self._thread: threading.Thread | None = None
        self._cache_kw: str | None = None  # "cache" (transformers >= 5) or "past_key_values"
        self.counts = {"steps": 0, "prompt_tokens": 0, "completion_tokens": 0, "finished": 0,
                       "cancelled": 0, "refused": 0}
        self.ttft_s: deque[float] = deque(maxlen=1024)
        self._events: list[tuple[Sink, tuple[str, int, str | None]]] = []  # delivered after each step
        raw = getattr(tokenizer, "_tokenizer", None)  # the Rust tokenizer: no Python wrapper per call
        self._decode: Callable[[list[int]], str] = (
            (lambda ids: raw.decode(ids, skip_special_tokens=True)) if raw is not None and hasattr(raw, "decode")
            else (lambda ids: tokenizer.decode(ids, skip_special_tokens=True)))

    # -- the caller's side -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="bw-llm-decode", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def submit(self, prompt: list[int], sampling: Sampling, sink: Sink) -> Sequence:
        """Queue one sequence, or refuse: InvalidInput when it cannot fit the model's context,
        Overloaded when the KV budget or the queue is full."""
        if not prompt:
            raise InvalidInput("the prompt is empty (no tokens); send some text")
        if sampling.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be at least 1, got {sampling.max_tokens}")
        if len(prompt) + sampling.max_tokens > self.context:
            raise InvalidInput(
                f"prompt ({len(prompt)} tokens) + max_tokens ({sampling.max_tokens}) is over the model's "
                f"context of {self.context} tokens; ask for at most {max(0, self.context - len(prompt))} tokens")
        seq = Sequence(prompt, sampling, sink)
        with self._lock:
            budget = self.kv_budget_tokens
            rows, longest = self._bound(seq)
            if budget is not None and rows * longest > budget:
                self.counts["refused"] += 1
                if seq.reserved > budget:
                    raise InvalidInput(f"this request needs {seq.reserved} KV tokens (prompt + max_tokens), "
                                       f"over the whole budget of {budget}; lower max_tokens")
                raise Overloaded(f"KV budget full: with this request the padded cache could reach {rows} rows x "
                                 f"{longest} tokens = {rows * longest}, over the budget of {budget} "
                                 f"({len(self._admitted)} sequences admitted)", retry_after_s=1.0)
            if len(self._waiting) >= self.max_queue:
                self.counts["refused"] += 1
                raise Overloaded(f"generation queue full ({self.max_queue} waiting)", retry_after_s=1.0)
            self._reserved += seq.reserved
            self._admitted.add(seq)
            self._waiting.append(seq)
            self._lock.notify_all()
        return seq

    def _bound(self, extra: Sequence | None = None) -> tuple[int, int]:
        """Under the lock: (rows, tokens per row) the padded cache can reach with the admitted
        sequences (and ``extra``)."""
        seqs = [*self._admitted, *([extra] if extra is not None else [])]
        if not seqs:
            return 0, 0
        return min(len(seqs), self.max_batch_size), max(s.reserved for s in seqs)

    def cancel(self, seq: Sequence) -> None:
        """Stop ``seq`` (its consumer left); it leaves the batch at the next step."""
        with self._lock:
            if seq.finish is None:
                seq.cancelled = True
                if seq in self._waiting:
                    self._waiting.remove(seq)
                    self._release(seq, "cancelled")
            self._lock.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            cached = int(self._mask.shape[0] * self._mask.shape[1]) if self._mask is not None else 0
            ttft = sorted(self.ttft_s)
            active = sum(1 for s in self._rows if s.finish is None)
            rows, longest = self._bound()
            return {"active": active, "waiting": len(self._waiting), "kv_reserved_tokens": self._reserved,
                    "kv_bound_tokens": rows * longest,
                    "kv_budget_tokens": self.kv_budget_tokens, "kv_cached_tokens": cached,
                    "ttft_p50_s": ttft[len(ttft) // 2] if ttft else None, **self.counts}

    # -- the decode thread -------------------------------------------------------------
    def _release(self, seq: Sequence, reason: str) -> None:
        """Under the lock: the sequence is done; free its reservation and tell its consumer."""
        if seq.finish is not None:
            return
        seq.finish = reason
        self._reserved -= seq.reserved
        self._admitted.discard(seq)
        self.counts["cancelled" if reason == "cancelled" else "finished"] += 1
        self.counts["completion_tokens"] += len(seq.ids)
        if reason != "cancelled":
            self._events.append((seq.sink, (seq.text[seq.emitted:], len(seq.ids), reason)))

    def _loop(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._lock:
                    while not self._stop and not self._rows and not self._waiting:
                        self._lock.wait()
                    if self._stop:
                        for seq in [*self._rows, *self._waiting]:
                            self._release(seq, "cancelled")
                        self._events.clear()
                        return
                    joining: list[Sequence] = []
                    while self._waiting and len(self._rows) + len(joining) < self.max_batch_size:
                        joining.append(self._waiting.popleft())
                try:
                    if joining:
                        self._prefill(joining)
                    self._drop_finished()
                    self._deliver()
                    if self._rows:
                        self._step()
                        self._drop_finished()
                        self._deliver()
                except Exception as exc:  # the model broke: fail every live sequence, keep serving
                    log.exception("llm decode step failed")
                    with self._lock:
                        for seq in self._rows:
                            seq.text = seq.text[:seq.emitted]
                            self._release(seq, f"error: {type(exc).__name__}: {exc}")
                        self._rows, self._kv, self._mask = [], [], None
                    self._deliver()

    def _forward(self, **kwargs: Any) -> tuple[Any, list[tuple[Any, Any]]]:
        from transformers import DynamicCache

        past = kwargs.pop("past", None)
        if past is not None:
            cache = DynamicCache()
            for i, (k, v) in enumerate(past):
                cache.update(k, v, i)
            if self._cache_kw is None:  # first decode step: which keyword takes the cache?
                want = past[0][0].shape[2] + kwargs["input_ids"].shape[1]
                try:
                    got = self._unpack(self.model(use_cache=True, cache=cache, **kwargs))
                    if got[1][0][0].shape[2] == want:  # used, not silently swallowed by **kwargs
                        self._cache_kw = "cache"
                        return got
                except TypeError:
                    pass
                self._cache_kw = "past_key_values"
                cache = DynamicCache()
                for i, (k, v) in enumerate(past):
                    cache.update(k, v, i)
            kwargs[self._cache_kw] = cache
        return self._unpack(self.model(use_cache=True, **kwargs))

    @staticmethod
    def _unpack(out: Any) -> tuple[Any, list[tuple[Any, Any]]]:
        new: Any = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
        layers = [(layer.keys, layer.values) for layer in new.layers]
        return out.logits[:, -1, :], layers

    def _prefill(self, joining: list[Sequence]) -> None:
        """Prefill every newcomer in one forward pass (left-padded, masked, each row with its
        own positions), sample each one's first token, and append the rows to the batch."""
        import torch

        live = []
        for seq in joining:
            if seq.cancelled:
                with self._lock:
                    self._release(seq, "cancelled")
            else:
                live.append(seq)
        if not live:
            return
        width = max(len(s.prompt) for s in live)
        pad = self.eos if self.eos is not None else 0
        ids = torch.tensor([[pad] * (width - len(s.prompt)) + s.prompt for s in live], device=self.device)
        mask = torch.tensor([[0] * (width - len(s.prompt)) + [1] * len(s.prompt) for s in live],
                            dtype=torch.long, device=self.device)
        if len(live) == 1:
            logits, kv = self._forward(input_ids=ids)
        else:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits, kv = self._forward(input_ids=ids, attention_mask=mask, position_ids=positions)
        for seq in live:
            self.counts["prompt_tokens"] += len(seq.prompt)
            seq.generator = torch.Generator(device="cpu")
            seq.generator.manual_seed(seq.sampling.seed if seq.sampling.seed is not None
                                      else int(torch.randint(0, 2**31 - 1, ()).item()))
        if not self._rows:
            self._kv, self._mask = kv, mask
        else:
            width = max(self._mask.shape[1], width)
            self._kv = [(torch.cat([_pad(bk, width), _pad(k, width)]), torch.cat([_pad(bv, width), _pad(v, width)]))
                        for (bk, bv), (k, v) in zip(self._kv, kv, strict=True)]
            self._mask = torch.cat([_pad_mask(self._mask, width), _pad_mask(mask, width)])
        with self._lock:
            self._rows.extend(live)
        for seq, token in zip(live, self._sample_rows(live, logits), strict=True):
            self._accept(seq, token)

    def _step(self) -> None:
        import torch

        rows = self._rows
        last = torch.tensor([[s.ids[-1]] for s in rows], device=self.device)
        positions = torch.tensor([[len(s.prompt) + len(s.ids) - 1] for s in rows], device=self.device)
        mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=self._mask.dtype, device=self.device)], 1)
        logits, self._kv = self._forward(input_ids=last, attention_mask=mask, position_ids=positions,
                                         past=self._kv)
        self._mask = mask
        self.counts["steps"] += 1
        for seq, token in zip(rows, self._sample_rows(rows, logits), strict=True):
            if seq.finish is None and not seq.cancelled:
                self._accept(seq, token)

    def _sample_rows(self, rows: list[Sequence], logits: Any) -> list[int]:
        """One token per row: greedy rows by one argmax over the batch, sampled rows from one
        softmax over the batch (then each row's own seeded generator)."""
        import torch

        tokens = logits.argmax(-1).tolist()
        hot = [i for i, s in enumerate(rows) if s.sampling.temperature > 0]
        if hot:
            temps = torch.tensor([rows[i].sampling.temperature for i in hot], dtype=torch.float32)
            probs = torch.softmax(logits[hot].float() / temps[:, None], dim=-1)
            for j, i in enumerate(hot):
                tokens[i] = self._draw(rows[i], probs[j])
        return [int(t) for t in tokens]

    def _draw(self, seq: Sequence, probs: Any) -> int:
        import torch

        s = seq.sampling
        if s.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < s.top_p
            keep[0] = True
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs.cpu(), 1, generator=seq.generator).item())

    def _accept(self, seq: Sequence, token: int) -> None:
        """Add one sampled token: detokenize, check stop strings and limits, emit what is safe."""
        if seq.first_token_at is None:
            seq.first_token_at = time.perf_counter()
            self.ttft_s.append(seq.first_token_at - seq.submitted_at)
        s = seq.sampling
        if self.eos is not None and token == self.eos:
            with self._lock:
                self._release(seq, "stop")
            return
        seq.ids.append(token)
        before = self._decode(seq.ids[seq.prefix_at:seq.read_at])
        after = self._decode(seq.ids[seq.prefix_at:])
        if len(after) > len(before) and not after.endswith("\ufffd"):  # whole characters only
            seq.text += after[len(before):]
            seq.prefix_at, seq.read_at = seq.read_at, len(seq.ids)
        reason = None
        for stop in s.stop:
            at = seq.text.find(stop, max(0, seq.emitted - len(stop)))
            if at != -1:
                seq.text, reason = seq.text[:at], "stop"
                break
        if reason is None and len(seq.ids) >= s.max_tokens:
            reason = "length"
        if reason is not None:
            with self._lock:
                self._release(seq, reason)
            return
        hold = max((len(x) for x in s.stop), default=1) - 1
        safe = len(seq.text) - hold
        if safe > seq.emitted:
            self._events.append((seq.sink, (seq.text[seq.emitted:safe], len(seq.ids), None)))
            seq.emitted = safe

    def _deliver(self) -> None:
        """Hand this step's events to their consumers: one ``call_soon_threadsafe`` per event
        loop (a sink with a ``loop`` attribute runs there), so consumers wake once per step."""
        events, self._events = self._events, []
        by_loop: dict[Any, list[tuple[Sink, tuple[str, int, str | None]]]] = {}
        for sink, args in events:
            loop = getattr(sink, "loop", None)
            if loop is None:
                sink(*args)
            else:
                by_loop.setdefault(loop, []).append((sink, args))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_run_all, items)
            except RuntimeError:  # that loop is closed: its consumers are gone
                pass

    def _drop_finished(self) -> None:
        with self._lock:
            for seq in self._rows:
                if seq.cancelled:
                    self._release(seq, "cancelled")
            keep = [i for i, s in enumerate(self._rows) if s.finish is None]
            if len(keep) == len(self._rows):
                return
            self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._kv, self._mask = [], None
            return
        import torch

        index = torch.tensor(keep, device=self.device)
        mask = self._mask.index_select(0, index)
        used = mask.any(0).nonzero()
        start = int(used[0].item()) if len(used) else mask.shape[1]
        self._mask = mask[:, start:]
        self._kv = [(k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
                    for k, v in self._kv]


def _run_all(items: list[tuple[Sink, tuple[str, int, str | None]]]) -> None:
    for sink, args in items:
        sink(*args)


def _pad(t: Any, width: int) -> Any:
    """Left-pad a [rows, heads, T, dim] cache tensor with zeros to ``width`` columns."""
    import torch

    missing = width - t.shape[2]
    if missing <= 0:
        return t
    return torch.cat([t.new_zeros((t.shape[0], t.shape[1], missing, t.shape[3])), t], 2)


def _pad_mask(mask: Any, width: int) -> Any:
    import torch

    missing = width - mask.shape[1]
    if missing <= 0:
        return mask
    return torch.cat([mask.new_zeros((mask.shape[0], missing)), mask], 1)


