"""Build deploy/Dockerfile and run it, when a container runtime and a base image are at hand:
the image serves the quickstart as a non-root user, answers /v2/health/ready and an infer, and
its HEALTHCHECK passes. Skipped otherwise (this sandbox cannot pull python:3.11-slim; set
BRICKWORK_IMAGE_BASE to a local Debian-based Python 3.11 image to run it, e.g. one imported
from a debootstrap rootfs, see deploy/README.md)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = shutil.which("podman") or shutil.which("docker")
BASE = os.environ.get("BRICKWORK_IMAGE_BASE")
# more `build` flags, e.g. "--isolation chroot -v /etc/ssl/certs/ca-certificates.crt:/ca.crt:ro
# --build-arg PIP_CERT=/ca.crt" behind a TLS-intercepting proxy
BUILD_FLAGS = os.environ.get("BRICKWORK_IMAGE_BUILD_FLAGS", "").split()

pytestmark = pytest.mark.skipif(RUNTIME is None or not BASE,
                                reason="needs podman/docker and BRICKWORK_IMAGE_BASE (a local Python 3.11 image)")


def sh(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNTIME, *args], capture_output=True, text=True, timeout=timeout)  # type: ignore[list-item]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_image_builds_and_serves_the_quickstart(tmp_path):
    tag = f"localhost/brickwork-test:{uuid.uuid4().hex[:8]}"
    build = sh("build", "--network", "host", *BUILD_FLAGS, "-f", str(ROOT / "deploy" / "Dockerfile"),
               "--build-arg", f"PYTHON_IMAGE={BASE}", "--build-arg", "EXTRAS=server,onnx", "-t", tag, str(ROOT))
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    name = f"bw-{uuid.uuid4().hex[:8]}"
    port = free_port()
    try:
        run = sh("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
                 "-v", f"{ROOT / 'examples' / 'quickstart'}:/models:ro", tag, "/models/pipeline.yaml")
        assert run.returncode == 0, run.stderr
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=5) as http:
            while True:
                try:
                    if http.get(url + "/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, sh("logs", name).stderr[-3000:]
                time.sleep(0.5)
            body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["I love it!"]}]}
            r = http.post(url + "/v2/models/quickstart/infer", json=body)
            assert r.status_code == 200, r.text
            assert {o["name"]: o["data"] for o in r.json()["outputs"]}["decision"] == ["positive"]
        assert sh("exec", name, "id", "-u").stdout.strip() == "10001"
        if Path(RUNTIME).name == "podman":  # type: ignore[arg-type]
            assert sh("healthcheck", "run", name).returncode == 0
    finally:
        sh("rm", "-f", name, timeout=60)
        sh("rmi", "-f", tag, timeout=60)
