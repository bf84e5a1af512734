"""What the llm brick's KV-cache strategy costs vs per-sequence caches (issue 15).

The continuous-batching brick (``brickwork.llm._batcher.Batcher``) keeps ONE padded cache per
layer, ``[rows, heads, T, dim]``, left-padded so every row's next token lands in the same
column; a decode step is one forward over that tensor as it is. The alternative keeps a cache
per sequence, exactly its own length, and either

* ``per-seq, gathered``: pads the sequences' caches into one batch for each step's forward and
  appends each row's new column to its own cache afterwards (batched compute, no padding kept
  between steps, two copies of the whole cache per step), or
* ``per-seq, alone``: runs one forward per sequence per step (no padding at all, no batching).

All three run inside the same Batcher (same queue, prefill, sampling and continuous batching;
the per-sequence ones override only how the cache is held and stepped), greedy, end-of-text
ignored so every stream makes exactly its ``max_tokens``. Mixed prompt lengths (8, 24, 64, 128
tokens) and mixed ``max_tokens`` (32, 64, 96), all streams submitted at once, 1 torch thread.
Reported per strategy and stream count: tokens/s (median and range over interleaved rounds),
the KV bytes held between steps at the peak (padded: rows x longest; per-seq: the sum of the
real lengths), the peak within a step (per-seq gathered: the held caches plus the gathered
batch), and whether the tokens equal the padded brick's.

    .venv/bin/python bench/llm_kv.py [--rounds 3] [--streams 1 4 16] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brickwork.llm._batcher import Batcher, Sampling, Sequence, _pad

PROMPT_LENS = (8, 24, 64, 128)
MAX_TOKENS = (32, 64, 96)


def _nbytes(kv: list[tuple[Any, Any]]) -> int:
    return sum(k.nbytes + v.nbytes for k, v in kv)


class Padded(Batcher):
    """The brick's own strategy, unchanged; records the cache it holds after each step."""

    name = "padded batch (the brick)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peak_held = self.peak_step = 0

    def _held(self) -> int:
        return _nbytes(self._kv)

    def _step(self) -> None:
        super()._step()
        held = self._held()
        self.peak_held = max(self.peak_held, held)
        self.peak_step = max(self.peak_step, held)


class PerSeqGathered(Padded):
    name = "per-seq caches, gathered per step"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.caches: dict[int, list[tuple[Any, Any]]] = {}

    def _held(self) -> int:
        return sum(_nbytes(c) for c in self.caches.values())

    def _prefill(self, joining: list[Sequence]) -> None:
        before, self._rows = self._rows, []
        self._kv, self._mask = [], None
        super()._prefill(joining)  # one padded prefill of the newcomers, then split per row
        new, mask = self._rows, self._mask
        for i, seq in enumerate(new):
            if mask is not None:
                start = int(mask[i].nonzero()[0].item())
                self.caches[id(seq)] = [(k[i:i + 1, :, start:].clone(), v[i:i + 1, :, start:].clone())
                                        for k, v in self._kv]
        self._rows, self._kv, self._mask = before + new, [], None

    def _step(self) -> None:
        import torch

        rows = self._rows
        caches = [self.caches[id(s)] for s in rows]
        lens = [c[0][0].shape[2] for c in caches]
        width = max(lens)
        past = [(torch.cat([_pad(c[layer][0], width) for c in caches]),
                 torch.cat([_pad(c[layer][1], width) for c in caches])) for layer in range(len(caches[0]))]
        gathered = _nbytes(past)
        mask = torch.tensor([[0] * (width - n) + [1] * (n + 1) for n in lens], dtype=torch.long)
        last = torch.tensor([[s.ids[-1]] for s in rows])
        positions = torch.tensor([[len(s.prompt) + len(s.ids) - 1] for s in rows])
        logits, kv = self._forward(input_ids=last, attention_mask=mask, position_ids=positions, past=past)
        for i, seq in enumerate(rows):
            self.caches[id(seq)] = [(torch.cat([ck, k[i:i + 1, :, -1:]], 2), torch.cat([cv, v[i:i + 1, :, -1:]], 2))
                                    for (ck, cv), (k, v) in zip(self.caches[id(seq)], kv, strict=True)]
        self.counts["steps"] += 1
        held = self._held()
        self.peak_held = max(self.peak_held, held)
        self.peak_step = max(self.peak_step, held + gathered)
        for seq, token in zip(rows, self._sample_rows(rows, logits), strict=True):
            if seq.finish is None and not seq.cancelled:
                self._accept(seq, token)

    def _drop_finished(self) -> None:
        with self._lock:
            for seq in self._rows:
                if seq.cancelled:
                    self._release(seq, "cancelled")
            gone = [s for s in self._rows if s.finish is not None]
            self._rows = [s for s in self._rows if s.finish is None]
        for seq in gone:
            self.caches.pop(id(seq), None)


class PerSeqAlone(PerSeqGathered):
    name = "per-seq caches, one forward each"

    def _step(self) -> None:
        import torch

        rows = self._rows
        logits = []
        for seq in rows:
            last = torch.tensor([[seq.ids[-1]]])
            positions = torch.tensor([[len(seq.prompt) + len(seq.ids) - 1]])
            one, kv = self._forward(input_ids=last, position_ids=positions, past=self.caches[id(seq)])
            self.caches[id(seq)] = kv
            logits.append(one)
        self.counts["steps"] += 1
        held = self._held()
        self.peak_held = max(self.peak_held, held)
        self.peak_step = max(self.peak_step, held)
        for seq, token in zip(rows, self._sample_rows(rows, torch.cat(logits)), strict=True):
            if seq.finish is None and not seq.cancelled:
                self._accept(seq, token)


def _run(cls: type[Padded], model: Any, tok: Any, streams: int) -> dict[str, Any]:
    import random

    rng = random.Random(7)
    eos = tok.eos_token_id
    prompts = [[rng.choice([t for t in range(1, 500) if t != eos]) for _ in range(PROMPT_LENS[i % 4])]
               for i in range(streams)]
    batcher = cls(model, tok, max_batch_size=16)
    batcher.eos = None  # every stream makes exactly its max_tokens
    done = threading.Event()
    left = [streams]
    tokens: dict[int, list[int]] = {}
    seqs = []

    def sink_for(i: int) -> Any:
        def sink(delta: str, n: int, finish: str | None) -> None:
            if finish is not None:
                left[0] -= 1
                if left[0] == 0:
                    done.set()
        return sink

    batcher.start()
    try:
        t0 = time.perf_counter()
        for i, p in enumerate(prompts):
            seqs.append(batcher.submit(p, Sampling(max_tokens=MAX_TOKENS[i % 3]), sink_for(i)))
        assert done.wait(300)
        wall = time.perf_counter() - t0
    finally:
        batcher.close()
    for i, s in enumerate(seqs):
        tokens[i] = list(s.ids)
    made = sum(len(t) for t in tokens.values())
    return {"tokens_per_s": made / wall, "tokens": made, "peak_held_kib": batcher.peak_held / 1024,
            "peak_step_kib": batcher.peak_step / 1024, "ids": tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch
    from examples.rag.build import build_generator
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    path = build_generator()
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    strategies = (Padded, PerSeqGathered, PerSeqAlone)
    _run(Padded, model, tok, 4)  # warm-up
    rows = []
    for n in args.streams:
        runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in strategies}
        for _ in range(args.rounds):  # interleaved: each round runs every strategy once
            for cls in strategies:
                runs[cls.name].append(_run(cls, model, tok, n))
        ref = runs[Padded.name][0]["ids"]
        for cls in strategies:
            rs = runs[cls.name]
            tps = [r["tokens_per_s"] for r in rs]
            same = sum(r["ids"][i] == ref[i] for r in rs for i in ref) / (len(rs) * len(ref))
            row = {"streams": n, "strategy": cls.name, "tokens_per_s_median": statistics.median(tps),
                   "tokens_per_s_min": min(tps), "tokens_per_s_max": max(tps),
                   "peak_held_kib": rs[0]["peak_held_kib"], "peak_step_kib": rs[0]["peak_step_kib"],
                   "tokens": rs[0]["tokens"], "same_tokens_as_padded": same}
            rows.append(row)
            print(f"{n:3d} streams  {cls.name:36s} {row['tokens_per_s_median']:7.0f} tok/s "
                  f"({min(tps):.0f}-{max(tps):.0f})  KV held peak {row['peak_held_kib']:7.1f} KiB, "
                  f"in-step peak {row['peak_step_kib']:7.1f} KiB, same tokens {same:.0%}", flush=True)
    if args.json:
        out = Path(args.json)
        history = json.loads(out.read_text()) if out.exists() else []
        history.append({"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": args.rounds,
                        "prompt_lens": PROMPT_LENS, "max_tokens": MAX_TOKENS, "rows": rows})
        out.write_text(json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    main()
