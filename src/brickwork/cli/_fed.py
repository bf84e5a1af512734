"""``brickwork fed run FED.yaml``: federated training over one process per client.

Prints a bar and a line per round on stderr; ``--json`` prints the round history on stdout;
the accuracy plot goes to ``--plot`` (default ``<checkpoint_dir>/accuracy.png`` when matplotlib is
installed); ``--resume`` continues after the newest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("fed", help="federated training: one model, data that stays at each site")
    verbs = p.add_subparsers(dest="fed_command", required=True, metavar="VERB")
    r = verbs.add_parser("run", help="run the rounds of FED.yaml, then export the model for `brickwork serve`")
    r.add_argument("file", metavar="FED.yaml")
    r.add_argument("--resume", action="store_true", help="continue after the newest checkpoint")
    r.add_argument("--rounds", type=int, default=None, help="total rounds (default: the file's `rounds`)")
    r.add_argument("--json", action="store_true", help="print the round history as JSON on stdout")
    r.add_argument("--plot", default=None, metavar="PNG", help="accuracy-per-round plot (default: "
                   "<checkpoint_dir>/accuracy.png when matplotlib is installed)")
    r.add_argument("--no-plot", action="store_true", help="write no plot")
    r.add_argument("-q", "--quiet", action="store_true", help="no per-round progress")
    r.set_defaults(func=run)


def _plot(args: argparse.Namespace, history: list[Any], default: Path, title: str) -> str | None:
    from ..federated import plot_accuracy

    if args.no_plot:
        return None
    if args.plot is None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return None
    return str(plot_accuracy(history, args.plot or default, title=title))


def run(args: argparse.Namespace) -> int:
    from ..federated import Progress, load_config
    from ..federated import run as run_rounds

    config = load_config(args.file)
    total = args.rounds or config.rounds
    progress = None if args.quiet else Progress(total, stream=sys.stderr)
    result = run_rounds(config, resume=args.resume, rounds=total, progress=progress)
    plot = _plot(args, result.history, config.checkpoints / "accuracy.png", config.name)
    last = result.history[-1] if result.history else None
    if args.json:
        print(json.dumps({"name": config.name, "resumed_from": result.resumed_from,
                          "rounds": [r.as_dict() for r in result.history], "onnx": result.onnx,
                          "pipeline": result.pipeline, "plot": plot}, indent=1))
    else:
        if last is not None:
            print(f"{config.name}: {len(result.history)} rounds, accuracy {last.accuracy}", file=sys.stderr)
        for what, path in (("model", result.onnx), ("plot", plot)):
            if path:
                print(f"{what}: {path}", file=sys.stderr)
        if result.pipeline:
            print(f"serve it: brickwork serve {result.pipeline}", file=sys.stderr)
    return 0
