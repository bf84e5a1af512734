"""A server process settles the garbage collector once its pipelines are loaded (see
``brickwork.server._run``): everything loaded is frozen and young collections are rarer."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from brickwork.server._run import GC_GEN0_THRESHOLD, settle_gc

SRC = Path(__file__).resolve().parents[2] / "src"

CHILD = """
import gc, os, signal
import brickwork as bw
from brickwork.server import serve

def ready(host, port):
    print("FROZEN", gc.get_freeze_count(), "GEN0", gc.get_threshold()[0], flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

def echo(x: float) -> float:
    return x

serve(bw.function(echo, outputs="y").compile(name="echo"), port=0, on_ready=ready)
"""


def test_a_server_process_freezes_what_it_loaded_before_serving() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = next((ln for ln in out.splitlines() if ln.startswith("FROZEN")), None)
    assert line is not None, out
    _, frozen, _, gen0 = line.split()
    assert int(frozen) > 1000  # modules, bricks, the app: all moved out of the collector's way
    assert int(gen0) == GC_GEN0_THRESHOLD


def test_settle_gc_freezes_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
