"""Build the RAG example's models in ``.models/`` (gitignored, cached):

* ``generator/``: a tiny GPT-2 (2 layers, byte-level BPE of 512 tokens) trained on
  ``corpus.md`` for at most ``--budget-s`` seconds (default 90) on the CPU, saved with
  ``save_pretrained`` as a normal Hugging Face model directory: the llm brick loads it the way
  it loads any real model directory.

    python -m examples.rag.build [--force] [--budget-s 90]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

HERE = Path(__file__).parent
MODELS = HERE / ".models"
CORPUS = HERE / "corpus.md"
RECIPE = {"layers": 2, "heads": 4, "width": 96, "vocab": 512, "context": 256, "seed": 0, "window": 96}


def _stamp(budget_s: float) -> str:
    text = CORPUS.read_bytes() + json.dumps(RECIPE, sort_keys=True).encode() + str(budget_s).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def build_generator(*, force: bool = False, budget_s: float = 90.0, out: Path | None = None) -> Path:
    """Train (or reuse) the tiny generator; returns its directory."""
    out = out or MODELS / "generator"
    stamp = _stamp(budget_s)
    if not force and (out / "brickwork-stamp").exists() and (out / "brickwork-stamp").read_text() == stamp:
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(RECIPE["seed"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model trains faster on one thread than on contended two
    text = CORPUS.read_text()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=RECIPE["vocab"], special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    eos = fast.eos_token_id
    config = GPT2Config(vocab_size=len(fast), n_positions=RECIPE["context"], n_embd=RECIPE["width"],
                        n_layer=RECIPE["layers"], n_head=RECIPE["heads"], bos_token_id=eos,
                        eos_token_id=eos)
    model = GPT2LMHeadModel(config)
    # passages end with the end-of-text token, so the model learns to stop
    ids: list[int] = []
    for passage in text.split("\n## "):
        ids += [*fast.encode(passage.strip()), eos]
    data = torch.tensor(ids)
    window = RECIPE["window"]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    t0, step, loss_value = time.monotonic(), 0, float("nan")
    while time.monotonic() - t0 < budget_s and step < 3000:
        starts = torch.randint(0, len(data) - window - 1, (16,))
        batch = torch.stack([data[s:s + window] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        loss_value = float(loss.detach())
    model.eval()
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    (out / "brickwork-train.json").write_text(json.dumps(
        {"steps": step, "seconds": round(time.monotonic() - t0, 1), "final_loss": round(loss_value, 3),
         "tokens": len(ids), **RECIPE}, indent=1))
    (out / "brickwork-stamp").write_text(stamp)
    return out


def build(*, force: bool = False) -> Path:
    """Every model the pipeline needs: MiniLM (text_router's export) and the generator."""
    from examples.text_router.build import build as build_minilm

    build_minilm(force=force)
    return build_generator(force=force)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="train again")
    parser.add_argument("--budget-s", type=float, default=90.0, help="training time limit (seconds)")
    args = parser.parse_args()
    from examples.text_router.build import build as build_minilm

    build_minilm()
    out = build_generator(force=args.force, budget_s=args.budget_s)
    print(out, (out / "brickwork-train.json").read_text())


if __name__ == "__main__":
    main()
