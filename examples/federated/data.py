"""The digits set (scikit-learn's bundled 8x8 images, no download) split non-IID over sites.

    python -m examples.federated.data            # writes examples/federated/.data/ (< 1 s)

A stratified 70/30 train/test split (seed 0, as in examples/digits_ensemble). Each site owns two
"major" digits (site k: 2k and 2k+1) and gets 85 % of their training images; the other 15 % of
every digit is spread evenly over the other sites. So each site sees mostly 2 digits and a
few of the rest. Files: ``site{k}.npz`` (x float32 (N, 64) raw pixels 0..16, y int64),
``test.npz`` (the held-out 30 %) and ``union.npz`` (all training images, for the central
baseline only: the federated server never reads it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["DATA", "split"]

DATA = Path(__file__).resolve().parent / ".data"


def split(out: str | Path = DATA, *, sites: int = 5, major: float = 0.85, seed: int = 0) -> dict[str, Path]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    owner = np.empty(len(y_tr), dtype=np.int64)
    for digit in range(10):
        idx = np.flatnonzero(y_tr == digit)
        home = (digit // 2) % sites
        others = [s for s in range(sites) if s != home]
        rng.shuffle(idx)
        cut = round(major * len(idx))
        owner[idx[:cut]] = home
        owner[idx[cut:]] = np.resize(others, len(idx) - cut)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for s in range(sites):
        mine = np.flatnonzero(owner == s)
        paths[f"site{s}"] = folder / f"site{s}.npz"
        np.savez(paths[f"site{s}"], x=x_tr[mine], y=y_tr[mine])
    paths["test"] = folder / "test.npz"
    np.savez(paths["test"], x=x_te, y=y_te)
    paths["union"] = folder / "union.npz"
    np.savez(paths["union"], x=x_tr, y=y_tr)
    return paths


if __name__ == "__main__":
    for name, path in split(sys.argv[1] if len(sys.argv) > 1 else DATA).items():
        with np.load(path) as z:
            counts = np.bincount(z["y"], minlength=10)
        print(f"{name:6s} {counts.sum():5d} images, per digit {counts.tolist()}  -> {path}")
