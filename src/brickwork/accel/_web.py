"""``export_web``: a brick's ONNX model plus a static page that runs it in the browser with
onnxruntime-web (WASM backend, one thread, so no cross-origin isolation is needed).

    DIR/model.onnx        the brick's model (exported to ONNX first for torch/sklearn bricks)
    DIR/brick.json        its signature: input and output names, datatypes, shapes
    DIR/index.html        the page: reads inputs.json (or ?inputs=URL), runs the model, shows
                          the outputs as JSON in <pre id="outputs"> and sets data-state="done"
    DIR/inputs.json       an example request {name: nested list}, when one is given
    DIR/ort/              onnxruntime-web's WASM build, vendored from the npm package with its
                          licence; the page loads nothing from anywhere else

The npm package is fetched once with ``npm pack`` into a cache folder (default
``.models/npm`` in the working directory) and reused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["ORT_WEB_VERSION", "WebExport", "export_web", "ort_web_package"]

ORT_WEB_VERSION = "1.31.1"
_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
_MIT = """MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

_ORT_TYPES = {"FP32": "float32", "FP64": "float64", "INT64": "int64", "INT32": "int32", "INT8": "int8",
              "UINT8": "uint8", "BOOL": "bool", "FP16": "float16", "BYTES": "string"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>brickwork: __NAME__ in the browser</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}pre{background:#f4f4f4;padding:1em;
overflow:auto}</style>
</head>
<body data-state="loading">
<h1>brick <code>__NAME__</code></h1>
<p>Runs <code>model.onnx</code> with onnxruntime-web (WASM) from this folder. Inputs come from
<code>inputs.json</code> (or <code>?inputs=URL</code>): an object of tensor name to nested list.</p>
<p id="status">loading…</p>
<pre id="outputs"></pre>
<script src="ort/ort.wasm.min.js"></script>
<script>
"use strict";
const TYPED = {float32: Float32Array, float64: Float64Array, int32: Int32Array, int8: Int8Array,
               uint8: Uint8Array, bool: Uint8Array};
function flat(v) { return Array.isArray(v) ? v.flat(Infinity) : [v]; }
function shapeOf(v) { const s = []; while (Array.isArray(v)) { s.push(v.length); v = v[0]; } return s; }
function toTensor(spec, value) {
  const data = flat(value), dims = shapeOf(value);
  if (spec.ort === "int64") return new ort.Tensor("int64", BigInt64Array.from(data.map(x => BigInt(x))), dims);
  if (spec.ort === "string") return new ort.Tensor("string", data.map(String), dims);
  return new ort.Tensor(spec.ort, TYPED[spec.ort].from(data.map(Number)), dims);
}
function fromTensor(t) {
  const data = Array.from(t.data, x => typeof x === "bigint" ? Number(x) : x);
  return {datatype: t.type, shape: t.dims, data: data};
}
async function main() {
  const brick = await (await fetch("brick.json")).json();
  const source = new URLSearchParams(location.search).get("inputs") || "inputs.json";
  const inputs = await (await fetch(source)).json();
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create("model.onnx", {executionProviders: ["wasm"]});
  const feeds = {};
  for (const spec of brick.inputs) feeds[spec.name] = toTensor(spec, inputs[spec.name]);
  const t0 = performance.now();
  const results = await session.run(feeds);
  const ms = performance.now() - t0;
  const out = {};
  for (const spec of brick.outputs) out[spec.name] = fromTensor(results[spec.name]);
  document.getElementById("outputs").textContent = JSON.stringify(out);
  document.getElementById("status").textContent = `ran in ${ms.toFixed(1)} ms`;
  document.body.dataset.state = "done";
}
main().catch(err => {
  document.getElementById("status").textContent = "error: " + err;
  document.getElementById("outputs").textContent = JSON.stringify({error: String(err)});
  document.body.dataset.state = "error";
});
</script>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class WebExport:
    directory: Path
    model: Path
    page: Path
    files: tuple[Path, ...]


def ort_web_package(cache: Path, version: str = ORT_WEB_VERSION) -> Path:
    """The onnxruntime-web npm tarball, fetched once with ``npm pack`` into ``cache``."""
    tgz = cache / f"onnxruntime-web-{version}.tgz"
    if tgz.is_file():
        return tgz
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(f"npm is needed once to fetch onnxruntime-web {version} (apt-get install npm), "
                          f"or put onnxruntime-web-{version}.tgz in {str(cache)!r}")
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "pack", f"onnxruntime-web@{version}", "--pack-destination", str(cache)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not tgz.is_file():
        raise ConfigError(f"npm pack onnxruntime-web@{version} failed: {done.stderr.strip()[-500:]}")
    return tgz


def _vendor(tgz: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(tgz) as tar:
        for name in (*(f"package/dist/{f}" for f in _FILES), "package/package.json"):
            member = tar.extractfile(name)
            if member is None:
                raise ConfigError(f"{str(tgz)!r} has no {name}")
            out = dest / Path(name).name
            out.write_bytes(member.read())
            written.append(out)
    licence = dest / "LICENSE.onnxruntime-web.txt"
    licence.write_text(f"onnxruntime-web {tgz.stem.rsplit('-', 1)[-1]} (npm, licence MIT), "
                       f"vendored by brickwork.\n\n{_MIT}", encoding="utf-8")
    return [*written, licence]


def _tolist(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype.kind in "OUS":
        return [x.decode() if isinstance(x, bytes) else str(x) for x in array.ravel()]
    return array.tolist()


def export_web(model: str | Path, out: str | Path, *, name: str = "model",
               inputs: Mapping[str, Any] | None = None, cache: str | Path | None = None,
               write: bool = False) -> WebExport:
    """Write ``model`` (an ONNX file) and the page that runs it to ``out``; see the module doc."""
    from ..bricks.onnx import OnnxBrick

    src = Path(model)
    directory = Path(out)
    if directory.exists() and any(directory.iterdir()) and not write:
        raise ConfigError(f"{str(directory)!r} exists and is not empty; pass --write (write=True) to replace "
                          "its files")
    signature = OnnxBrick(src, name=name).signature
    sig: dict[str, Any] = {"name": name, "inputs": [], "outputs": []}
    for kind, specs in (("inputs", signature.inputs), ("outputs", signature.outputs)):
        for spec in specs:
            if spec.dtype not in _ORT_TYPES:
                raise ConfigError(f"{kind[:-1]} {spec.name!r} is {spec.dtype}, which onnxruntime-web cannot take")
            sig[kind].append({"name": spec.name, "datatype": spec.dtype, "shape": list(spec.shape),
                              "ort": _ORT_TYPES[spec.dtype]})
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "model.onnx"
    shutil.copyfile(src, target)
    (directory / "brick.json").write_text(json.dumps(sig, indent=2), encoding="utf-8")
    page = directory / "index.html"
    page.write_text(_PAGE.replace("__NAME__", name), encoding="utf-8")
    files = [target, directory / "brick.json", page]
    if inputs is not None:
        (directory / "inputs.json").write_text(json.dumps({k: _tolist(v) for k, v in inputs.items()}),
                                               encoding="utf-8")
        files.append(directory / "inputs.json")
    tgz = ort_web_package(Path(cache) if cache is not None else Path(".models") / "npm")
    files += _vendor(tgz, directory / "ort")
    return WebExport(directory, target, page, tuple(files))
