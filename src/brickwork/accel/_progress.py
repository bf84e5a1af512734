"""A plain-text progress bar on stderr for the long steps (calibration, benchmarks)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``[#####.....]  label  done/total``; redrawn in place on a terminal, one final line
    otherwise (so logs stay readable). ``enabled=False`` prints nothing."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._t0 = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        now = time.perf_counter()
        if self.enabled and self._tty and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def _line(self) -> str:
        frac = self.done / self.total
        bar = "#" * int(frac * 24)
        return f"[{bar:<24}] {self.label} {self.done}/{self.total} {time.perf_counter() - self._t0:5.1f} s"

    def close(self) -> None:
        if self.enabled:
            self.stream.write(("\r" if self._tty else "") + self._line() + "\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
