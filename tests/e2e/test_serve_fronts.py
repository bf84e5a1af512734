"""The two HTTP fronts of `brickwork serve`: `--http uvicorn` with TLS (a self-signed
certificate made with the openssl command), and the flags that only one front takes."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys

import httpx
import pytest
from tests.e2e.serve_helpers import served, write_models

pytestmark = pytest.mark.timeout(120)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_uvicorn_front_serves_tls(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    files = write_models(tmp_path)
    from tests.e2e import serve_helpers as sh

    proc = None
    try:
        cmd = [sys.executable, "-c", "import sys; from brickwork.cli import main; sys.exit(main())",
               "serve", *map(str, files), "--port", "0", "--http", "uvicorn",
               "--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on https://" in line, line
        url = line.rsplit(" on ", 1)[1].strip()
        ctx = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=ctx, timeout=10) as http:
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
            r = http.post(url + "/v2/models/calc/infer", json=body)
            assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [2, 4, 6, 8]
    finally:
        if proc is not None:
            sh.stop(proc)


def test_tls_on_the_native_front_is_refused_with_the_fix(tmp_path):
    files = write_models(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import sys; from brickwork.cli import main; sys.exit(main())",
                        "serve", *map(str, files), "--port", "0", "--ssl-keyfile", "k", "--ssl-certfile", "c"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--http uvicorn" in r.stderr


def test_two_workers_on_the_uvicorn_front_serve_and_stop(tmp_path):
    files = write_models(tmp_path)
    with served(files, "--http", "uvicorn", "--workers", "2", cwd=tmp_path) as s:
        with httpx.Client(base_url=s.url, timeout=10) as http:
            for _ in range(10):
                assert http.get("/v2/health/ready").status_code == 200
        proc = s.proc
    assert proc.returncode == 0
