"""`brickwork serve` as a subprocess on a free port (--port 0, the port read from its output),
ready when /v2/health/ready says so, stopped by PID."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

MODELS_PY = '''
import time
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]


class Calc(TypedDict):
    y: Vec
    total: Annotated[np.ndarray, bw.Tensor("FP32", ())]


def calc(x: Vec) -> Calc:
    """y = 2x, total = row sums; 500 in x: the model raises; 503: overloaded; 504: slow."""
    if (x == 500).any():
        raise ValueError("x holds 500")
    if (x == 503).any():
        raise bw.Overloaded("calc is busy", retry_after_s=2.0)
    if (x == 504).any():
        time.sleep(1.0)
    return {"y": x * 2, "total": x.sum(axis=1)}


class Said(TypedDict):
    upper: str
    n: int


def shout(text: str) -> Said:
    return {"upper": text.upper(), "n": len(text)}
'''

CALC_YAML = """name: calc
bricks:
  calc: {python: "models:calc", batch: true, blocking: true}
graph: calc
"""

ECHO_YAML = """name: echo
bricks:
  shout: {python: "models:shout"}
graph: shout
"""


def write_models(folder: Path) -> list[Path]:
    (folder / "models.py").write_text(MODELS_PY)
    calc, echo = folder / "calc.yaml", folder / "echo.yaml"
    calc.write_text(CALC_YAML)
    echo.write_text(ECHO_YAML)
    return [calc, echo]


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    port: int
    output: list[str]


_PENDING: dict[int, bytearray] = {}  # per server PID: output read but not yet split into lines


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str | None:
    """The next line of the server's stdout ("" at EOF), None on timeout or exit. Reads the raw
    pipe: ``select`` on a buffered reader misses a second line that arrived in the same chunk
    as the first (the gRPC and HTTP lines often do), and would wait for output that came."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = _PENDING.setdefault(proc.pid, bytearray())
    while True:
        end = pending.find(b"\n")
        if end >= 0:
            line = bytes(pending[:end + 1])
            del pending[:end + 1]
            return line.decode(errors="replace")
        if time.monotonic() >= deadline:
            return None
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return ""
            pending += chunk
        elif proc.poll() is not None:
            return None


FRONTS = ("native", "uvicorn")  # the HTTP fronts `brickwork serve --http` offers


def start(files: list[Path], *args: str, cwd: Path, timeout_s: float = 60.0,
          env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None) -> Served:
    cmd = [sys.executable, "-c", "import sys; from brickwork.cli import main; sys.exit(main())",
           "serve", *map(str, files), "--port", "0", *args]
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
    full_env.pop("BRICKWORK_API_KEY", None)
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, start_new_session=True, preexec_fn=preexec_fn)
    deadline = time.monotonic() + timeout_s
    output: list[str] = []
    url = None
    while url is None:
        line = _read_line(proc, deadline)
        if line is None or line == "":
            stop(proc)
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"brickwork serve did not print its address: {output} {err[-2000:]}")
        output.append(line)
        if " on http://" in line:
            url = line.rsplit(" on ", 1)[1].strip()
    with httpx.Client(timeout=2.0) as http:  # ready when /v2/health/ready says so
        while http.get(url + "/v2/health/ready").status_code != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise RuntimeError("brickwork serve never became ready")
    return Served(proc, url, int(url.rsplit(":", 1)[1]), output)


def stop(proc: subprocess.Popen[str], timeout_s: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


@contextmanager
def served(files: list[Path], *args: str, cwd: Path, env: dict[str, str] | None = None,
           preexec_fn: Callable[[], None] | None = None) -> Iterator[Served]:
    s = start(files, *args, cwd=cwd, env=env, preexec_fn=preexec_fn)
    try:
        yield s
    finally:
        stop(s.proc)
