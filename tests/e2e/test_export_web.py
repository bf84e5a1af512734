"""`brickwork export --target web` as a user runs it: the folder is served on 127.0.0.1, headless
Chromium opens the page (onnxruntime-web, WASM, every file from that folder), and the outputs it
shows match ONNX Runtime in Python within 1e-4 on the same inputs."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make test installs Debian's "
                                "chromium with apt-get)")


class _Static(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json"}
    requested: list[str] = []

    def log_message(self, *args: object) -> None:
        type(self).requested.append(self.path)


@pytest.fixture()
def serve() -> Iterator[functools.partial[str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Static, directory=str(directory)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield functools.partial(start)
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _page_outputs(url: str, profile: Path) -> dict[str, dict[str, object]]:
    """Open ``url`` in headless Chromium and read the JSON the page writes into <pre id=outputs>."""
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=60000", "--dump-dom", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        dom, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert 'data-state="done"' in dom, dom[-2000:]
    match = re.search(r'<pre id="outputs">(.*?)</pre>', dom, re.S)
    assert match is not None, dom[-2000:]
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _export(pipeline: Path, brick: str, out: Path, inputs: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "brickwork.cli", "export", str(pipeline), "--brick", brick, "--target", "web",
         "--out", str(out), "--input", str(inputs), "--cache", str(ROOT / ".models" / "npm")],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr


def test_digits_cnn_runs_in_headless_chromium_like_in_onnx_runtime(tmp_path: Path, serve):
    pytest.importorskip("torch")
    from examples.digits_ensemble import build, models

    paths = build.build()
    _, x_te, _, _ = models.load_split()
    x = x_te[:16]
    (tmp_path / "inputs.json").write_text(json.dumps({"input": x.tolist()}))
    out = tmp_path / "web"
    _export(ROOT / "examples" / "digits_ensemble" / "pipeline.yaml", "cnn", out, tmp_path / "inputs.json")
    assert {p.name for p in (out / "ort").iterdir()} >= {"ort.wasm.min.js", "ort-wasm-simd-threaded.wasm",
                                                        "LICENSE.onnxruntime-web.txt"}
    page = (out / "index.html").read_text()
    assert "://" not in page  # nothing from a CDN: every file the page loads is in the folder
    _Static.requested.clear()
    got = _page_outputs(serve(out) + "index.html", tmp_path / "profile")
    assert any(p.startswith("/ort/ort-wasm-simd-threaded.wasm") for p in _Static.requested)
    assert all((out / p.split("?")[0].lstrip("/")).is_file() for p in _Static.requested if p != "/favicon.ico")
    session = ort.InferenceSession(str(paths["cnn"]), providers=["CPUExecutionProvider"])
    label, probs = session.run(["label", "probabilities"], {"input": x})
    assert got["label"]["shape"] == [16] and got["label"]["data"] == label.tolist()
    assert got["probabilities"]["shape"] == [16, 10]
    web = np.asarray(got["probabilities"]["data"], dtype=np.float64).reshape(16, 10)
    assert np.abs(web - probs).max() <= 1e-4


@pytest.mark.slow
def test_minilm_int64_token_inputs_run_in_chromium_like_in_onnx_runtime(tmp_path: Path, serve):
    pytest.importorskip("tokenizers")
    from examples.text_router import build, embed
    from examples.text_router.texts import TEXTS

    model = build.build()
    feeds = embed.tokenize(embed.load_tokenizer(model.parent / "tokenizer.json"), [t.text for t in TEXTS[:4]])
    (tmp_path / "inputs.json").write_text(json.dumps({k: v.tolist() for k, v in feeds.items()}))
    out = tmp_path / "web"
    _export(ROOT / "examples" / "text_router" / "pipeline.yaml", "minilm", out, tmp_path / "inputs.json")
    got = _page_outputs(serve(out) + "index.html", tmp_path / "profile")
    (want,) = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)
    web = np.asarray(got["last_hidden_state"]["data"], dtype=np.float64).reshape(want.shape)
    assert np.abs(web - want).max() <= 1e-4
