"""Importable helpers for bench/engine.py (worker processes rebuild bricks from import paths)."""

from __future__ import annotations

import numpy as np


def echo(x: np.ndarray) -> np.ndarray:
    """Hands its input straight back (the worker answers with where it already lies)."""
    return x


def fresh(x: np.ndarray) -> np.ndarray:
    """Returns a new array (the worker must write it into the response arena)."""
    return x.copy()


def pipe_echo(conn) -> None:  # type: ignore[no-untyped-def]
    """The pickle baseline's worker: receive an array through the pipe, send it back."""
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        conn.send(msg)
