"""Losing a node of a real two-node Ray cluster mid-load. The cluster runs inside a private
network namespace the test creates (``unshare -n``; only loopback exists there, so both nodes
are 127.0.0.1 and nothing reaches the machine's own address); needs root, as CI has."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="a private network namespace needs root and unshare")


def _mentions(cmdline: Path, text: str) -> bool:
    try:
        return text.encode() in cmdline.read_bytes()
    except OSError:
        return False


def test_a_lost_node_moves_its_replicas_or_degrades_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        ["unshare", "-n", "--", "sh", "-c",
         f'ip link set lo up && exec "{sys.executable}" "{HERE / "ray_two_nodes.py"}" "{tmp_path}"'],
        capture_output=True, text=True, timeout=280, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _mentions(p, out["temp"])]
    assert not left and not Path(out["temp"]).exists()  # every node process stopped, folder gone
    assert out["addresses"] == ["127.0.0.1"]
    # placement is observable: before the loss, node_b hosted one spread replica and both pinned ones
    assert out["placed_on_b"] == {"spread": 1, "pinned": 1, "pinned_bare": 1}, out
    for name in out["before"]:
        assert out["before"][name]["ok"] > 0 and out["before"][name]["error"] == 0, out
    # spread: the survivor took the retries, the lost replica came back on node_a, nothing failed
    assert out["replaced_after_s"] is not None and out["deaths"] >= 1, out
    assert out["counts"]["spread"]["error"] == 0 and out["after"] == [3.0, 3.0], out
    # pinned with a fallback rung: no request lost, the static default answered, labelled
    assert out["counts"]["pinned"]["error"] == 0 and out["counts"]["pinned"]["fallback"] > 0, out
    # pinned without one: clear errors (no live replica / deadline), never a hang or a wrong answer
    assert out["counts"]["pinned_bare"]["error"] > 0, out
    assert set(out["errors"]["pinned_bare"]) <= {"WorkerCrashed", "DeadlineExceeded"}, out
