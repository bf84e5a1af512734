"""deploy/README.md's TLS recipe: brickwork's ASGI App under uvicorn with --ssl-keyfile and
--ssl-certfile, a self-signed certificate made with openssl; ready and an infer over HTTPS."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def test_uvicorn_tls_recipe(tmp_path):
    readme = (ROOT / "deploy" / "README.md").read_text()
    app_py = re.search(r"```python\n# app.py\n(.*?)```", readme, re.S)
    assert app_py
    shutil.copytree(ROOT / "examples" / "quickstart", tmp_path / "q")
    (tmp_path / "q" / "app.py").write_text(app_py.group(1))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
                    "-out", "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], cwd=tmp_path / "q", check=True,
                   capture_output=True, timeout=60)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = re.search(r"uvicorn app:app [^\n]*", readme)
    assert cmd
    args = cmd.group(0).split()[1:]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", *args], cwd=tmp_path / "q",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tmp_path / "q" / "cert.pem")),
                      timeout=5) as http:
            while True:
                try:
                    if http.get(url + "/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "uvicorn did not become ready"
                time.sleep(0.2)
            body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["great!"]}]}
            r = http.post(url + "/v2/models/quickstart/infer", json=body)
            assert r.status_code == 200, r.text
            assert {o["name"]: o["data"] for o in r.json()["outputs"]}["decision"] == ["positive"]
            with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
                httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
