"""Shared memory runs out: a 5 MiB tmpfs as /dev/shm (a mount namespace of its own, so the
host's /dev/shm is untouched), tensors of 1, 3 and 24 MiB through a process worker.

Before the fix the arenas were sparse: the first write to a page the full tmpfs could not back
was a SIGBUS, which killed the worker (and the retry's worker: a "poison" 503), or the server
itself when the engine wrote a request arena. Now arenas are allocated up front, a full
/dev/shm is an ENOSPC at creation, and that batch travels through the pipe instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import brickwork

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(brickwork.__file__).resolve().parents[1]  # the brickwork under test

SCRIPT = '''
import asyncio
import numpy as np
from tests.integration import engine_bricks as eb
import brickwork as bw

async def main():
    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))], worker="process")
    async with node.compile() as pipeline:
        for mib in (1, 3, 24, 3):
            x = np.random.default_rng(mib).random((mib * (1 << 20) // 16, 4), dtype=np.float32)
            for _ in range(3):
                out = await pipeline.ainfer({"x": x})
                assert np.array_equal(out["y"], x * 2), mib
        stage = pipeline.stats()["stages"]["scale"]
        assert stage["restarts"] == 0 and stage["errors"] == {}, stage
        print("pickled", stage["copied_bytes"].get("pickled", 0), flush=True)
    print("answered all", flush=True)

if __name__ == "__main__":
    asyncio.run(main())
'''


def _namespaces_allowed() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces_allowed(), reason="needs root and mount namespaces (unshare -m)")
def test_a_full_dev_shm_never_kills_a_process_and_every_request_is_answered(tmp_path: Path) -> None:
    script = tmp_path / "shm_full.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{ROOT}", "PYTHONWARNINGS": "ignore"}
    cmd = f"mount -t tmpfs -o size=5m tmpfs /dev/shm && exec {sys.executable} {script}"
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=200)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    assert "answered all" in proc.stdout
    pickled = int(proc.stdout.split("pickled ", 1)[1].split()[0])
    assert pickled > 0  # the batches that found no room went through the pipe
    assert "no room" in proc.stderr  # and the operator was told why (once, not per batch)
    assert proc.stderr.count("no room") == 1
