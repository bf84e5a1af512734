"""Per-peer virtual environments under bench/peers/.venvs/<name> (stdlib only).

Each peer gets its OWN venv, created on first use and reused afterwards; nothing is ever
installed into the project's own dependencies. A venv counts as ready when its marker file
holds exactly the package list below (change the list -> the venv is reinstalled).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
MARKER = ".bench-installed.json"

# Versions follow /work/shared/PEERS.md. onnxruntime is in every server venv so that each
# server can load the ONNX model inside its own worker.
PACKAGES: dict[str, list[str]] = {
    # the load generator / orchestrator itself, and the raw floor (httptools, uvloop, orjson)
    "bench": ["aiohttp==3.*", "uvloop", "orjson", "httptools", "numpy", "onnx", "onnxruntime"],
    "fastapi": ["fastapi", "uvicorn[standard]", "numpy", "onnxruntime"],
    "litserve": ["litserve==0.2.19", "numpy", "onnxruntime"],
    "rayserve": ["ray[serve]==2.60.0", "numpy", "onnxruntime"],
    "pytriton": ["nvidia-pytriton==0.7.0", "numpy", "onnxruntime"],
}


def venv_dir(name: str) -> Path:
    return VENVS / name


def venv_python(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def base_python() -> str:
    """The interpreter that creates the venvs (never a venv's own python)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def is_ready(name: str) -> bool:
    m = venv_dir(name) / MARKER
    if not m.exists() or not venv_python(name).exists():
        return False
    try:
        return json.loads(m.read_text()).get("packages") == PACKAGES[name]
    except (OSError, ValueError):
        return False


def ensure(name: str, log=print, timeout_s: float = 1800) -> tuple[bool, str]:
    """Create/install the venv for `name`. Returns (ok, reason). Never raises."""
    if is_ready(name):
        return True, "ready"
    d = venv_dir(name)
    VENVS.mkdir(parents=True, exist_ok=True)
    logf = VENVS / f"{name}.install.log"
    t0 = time.time()
    try:
        if d.exists():
            shutil.rmtree(d)
        log(f"[envs] creating venv {d} (log: {logf})")
        with open(logf, "w") as f:
            subprocess.run([base_python(), "-m", "venv", str(d)], check=True, stdout=f,
                           stderr=subprocess.STDOUT, timeout=300)
            py = str(venv_python(name))
            subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], stdout=f,
                           stderr=subprocess.STDOUT, timeout=600)
            subprocess.run([py, "-m", "pip", "install", *PACKAGES[name]], check=True, stdout=f,
                           stderr=subprocess.STDOUT, timeout=timeout_s)
        (d / MARKER).write_text(json.dumps({"packages": PACKAGES[name],
                                            "installed_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                                            "seconds": round(time.time() - t0, 1)}))
        log(f"[envs] {name}: installed in {time.time() - t0:.0f}s")
        return True, "installed"
    except subprocess.TimeoutExpired:
        return False, f"pip install timed out after {timeout_s:.0f}s (see {logf})"
    except subprocess.CalledProcessError as e:
        tail = ""
        try:
            lines = [ln for ln in logf.read_text().splitlines() if ln.strip()]
            errs = [ln for ln in lines if "ERROR" in ln or "error" in ln.lower()]
            tail = (errs or lines)[-1][:200] if lines else ""
        except OSError:
            pass
        return False, f"install failed (exit {e.returncode}): {tail} (see {logf})"
    except OSError as e:
        return False, f"install failed: {e}"


def versions(name: str, dists: list[str]) -> dict[str, str]:
    """Installed versions of `dists` inside venv `name` (best effort)."""
    code = ("import json,sys\nfrom importlib import metadata as m\nout={}\n"
            "for d in sys.argv[1:]:\n  try: out[d]=m.version(d)\n  except Exception: pass\n"
            "print(json.dumps(out))")
    try:
        r = subprocess.run([str(venv_python(name)), "-c", code, *dists], capture_output=True,
                           text=True, timeout=60)
        return json.loads(r.stdout or "{}")
    except Exception:  # noqa: BLE001 - informational only
        return {}


if __name__ == "__main__":  # python bench/peers/envs.py [names...]: install only
    names = sys.argv[1:] or list(PACKAGES)
    rc = 0
    for n in names:
        ok, why = ensure(n)
        print(f"{n}: {'ok' if ok else 'FAILED'} {why}", flush=True)
        rc |= not ok
    sys.exit(rc)
