"""Progress of a run: a bar and a line per round on a stream, and a PNG of accuracy per round."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError
from ._runner import RoundReport

__all__ = ["Progress", "format_round", "plot_accuracy"]


def _f(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def format_round(r: RoundReport, total: int) -> str:
    line = (f"round {r.round}/{total}  clients {len(r.answered)}/{len(r.sampled)}  "
            f"train_loss {_f(r.train_loss)}  loss {_f(r.loss)}  accuracy {_f(r.accuracy)}  "
            f"{r.duration_s:.2f} s (overhead {r.overhead_s:.2f} s)")
    if r.epsilon is not None:
        line += f"  (epsilon {r.epsilon:.2f}, delta {r.delta:g})"
    if r.status != "ok":
        line += f"  SKIPPED: {r.reason}"
    for cid, why in r.dropped.items():
        line += f"\n    dropped {cid}: {why}"
    return line


class Progress:
    """Call with each RoundReport: prints a bar then the round's line."""

    def __init__(self, total: int, *, stream: TextIO | None = None, width: int = 24) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.width = width

    def __call__(self, r: RoundReport) -> None:
        done = int(self.width * r.round / max(1, self.total))
        bar = "#" * done + "." * (self.width - done)
        print(f"[{bar}] {format_round(r, self.total)}", file=self.stream, flush=True)


def plot_accuracy(history: Sequence[RoundReport], path: str | Path, *, title: str = "") -> Path:
    """A PNG of accuracy (and loss) per round. Needs matplotlib (``pip install brickwork[federated]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("the accuracy plot needs matplotlib: pip install 'brickwork[federated]'") from exc
    rounds = [r.round for r in history if r.accuracy is not None]
    acc = [r.accuracy for r in history if r.accuracy is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(rounds, acc, marker="o", label="accuracy")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "federated accuracy per round")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
