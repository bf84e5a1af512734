"""The ``brickwork`` command. Each subcommand lives in its own module ``_<name>.py`` with a
``register(subparsers)`` that adds its parser and sets ``func(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import BrickworkError

__all__ = ["COMMANDS", "build_parser", "main"]

# Every verb here must have its module: a missing one fails loudly at start (a test checks
# each verb's parser), instead of the verb silently vanishing from the CLI.
COMMANDS = ("validate", "run", "graph", "serve", "bench", "fed", "optimize", "export", "schema", "studio", "mcp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brickwork", description="Compose, check, run, benchmark and serve model pipelines."
    )
    parser.add_argument("--version", action="version", version=f"brickwork {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}._{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrickworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `brickwork graph ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
