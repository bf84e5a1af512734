"""Token tensors for ``brickwork optimize`` on the ``minilm`` brick: calibration and held-out rows.

    python -m examples.text_router.optimize_data      # writes .models/minilm-{calib,eval}.npz

The 36 labelled texts are few, so each set adds sentences made of the first half of one text and
the second half of another (deterministic); the two sets share no sentence. Rows are tokenized
like the pipeline's ``tokenize`` brick and padded to the longest row of the set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from examples.text_router import embed
from examples.text_router.texts import TEXTS

MODELS = Path(__file__).parent / ".models"


def _halves(text: str) -> tuple[str, str]:
    words = text.split()
    return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])


def sentences() -> tuple[list[str], list[str]]:
    """(calibration, held-out) texts: 256 mixed sentences each, the originals in held-out."""
    texts = [t.text for t in TEXTS]
    halves = [_halves(t) for t in texts]
    mixed = [f"{a} {halves[j][1]}" for i, (a, _) in enumerate(halves) for j in range(len(halves)) if i != j]
    order = np.random.default_rng(0).permutation(len(mixed))
    calib = [mixed[k] for k in order[:256]]
    held_out = texts + [mixed[k] for k in order[256: 256 + 256 - len(texts)]]
    return calib, held_out


def write(root: Path = MODELS) -> tuple[Path, Path]:
    tokenizer = embed.load_tokenizer(root / "tokenizer.json")
    paths = []
    for name, texts in zip(("calib", "eval"), sentences(), strict=True):
        path = root / f"minilm-{name}.npz"
        np.savez(path, **embed.tokenize(tokenizer, texts))
        paths.append(path)
    return paths[0], paths[1]


if __name__ == "__main__":
    for p in write():
        print(p)
