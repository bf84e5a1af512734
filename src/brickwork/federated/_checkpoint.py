"""One checkpoint per round: ``round-0003.npz`` (weights, strategy state) and ``round-0003.json``
(the round history), written atomically so a server killed mid-write leaves the previous one."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Checkpoint", "latest", "save"]

_KEEP = 2


@dataclass(frozen=True, slots=True)
class Checkpoint:
    round: int
    weights: list[np.ndarray]
    strategy_state: dict[str, np.ndarray]
    history: list[dict[str, Any]]


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(folder: Path, round_: int, weights: Sequence[np.ndarray], strategy_state: Mapping[str, np.ndarray],
         history: Sequence[Mapping[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(weights)}
    arrays.update({f"s_{k}": np.asarray(v) for k, v in strategy_state.items()})
    stem = folder / f"round-{round_:04d}"
    _atomic(stem.with_suffix(".npz"), lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    # the json is written last: a round counts as checkpointed once its json exists
    meta = {"round": round_, "n_weights": len(weights), "history": list(history)}
    _atomic(stem.with_suffix(".json"), lambda f: f.write(json.dumps(meta, indent=1).encode()))
    for old in sorted(folder.glob("round-*.json"))[:-_KEEP]:
        old.unlink(missing_ok=True)
        old.with_suffix(".npz").unlink(missing_ok=True)
    return stem.with_suffix(".npz")


def latest(folder: Path) -> Checkpoint | None:
    metas = sorted(folder.glob("round-*.json")) if folder.is_dir() else []
    for meta_path in reversed(metas):
        try:
            meta = json.loads(meta_path.read_text())
            with np.load(meta_path.with_suffix(".npz")) as z:
                weights = [z[f"w{i}"] for i in range(int(meta["n_weights"]))]
                state = {k[2:]: z[k] for k in z.files if k.startswith("s_")}
        except (OSError, ValueError, KeyError):
            continue
        return Checkpoint(int(meta["round"]), weights, state, list(meta["history"]))
    return None
