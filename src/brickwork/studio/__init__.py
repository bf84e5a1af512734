"""The pipeline studio (``brickwork studio FILE.yaml``): a page on 127.0.0.1 to edit a pipeline
file, checked by the same ``compile()`` as ``brickwork validate`` while you type (each error at
its line, with the fix its message gives), the compiled graph redrawn with its adapters, one
request run (the file's ``example`` or yours) with outputs and per-stage timings. The file is
written only when you press Save.

    GET  /                 the page (static HTML/JS/CSS from ``brickwork/server/static``)
    GET  /api/file         {"path", "text"}: the file as it is on disk
    POST /api/check        {"text"} → {"ok", "errors": [{"line", "message", "fix"}], "svg", "describe"}
    POST /api/run          {"text", "inputs"?} → {"ok", "outputs", "rungs", "stages": {name: timings}}
    POST /api/save         {"text"} → {"saved", "check"}: writes the file (even when it does not
                           compile: saving is your call; the answer says whether it compiles)

Loopback by default; the studio runs the file's Python bricks in this process, so it is a
developer's tool, not a server to expose.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BrickworkError, ConfigError

__all__ = ["Studio", "check", "locate", "make_server", "run_request", "serve_studio"]

_STATIC = {"studio.html": "text/html; charset=utf-8", "studio.js": "text/javascript; charset=utf-8",
           "studio.css": "text/css; charset=utf-8"}
_MAX_BODY = 4 * 1024 * 1024
_FIX = re.compile(r"^(use|annotate|pass|add|give|set|rename|remove|write|declare|name|make|check|"
                  r"install|run|expected|did you mean)\b", re.I)


def _static(name: str) -> bytes:
    from importlib import resources

    return resources.files("brickwork.server").joinpath("static", name).read_bytes()


def locate(message: str, text: str, where: str) -> dict[str, Any]:
    """An error message as ``{"line", "message", "fix"}``: the line from the ``where:LINE:``
    prefix the YAML loader writes, else the line that defines the first brick the message
    names; the fix is the message's advice (the clause after ``;`` that tells what to do)."""
    line: int | None = None
    m = re.match(re.escape(where) + r":(\d+): (.*)", message, re.S)
    if m:
        line, message = int(m.group(1)), m.group(2)
    elif message.startswith(where + ": "):
        message = message[len(where) + 2:]
    if line is None:
        line = _line_of_names(re.findall(r"'([A-Za-z_][\w.-]*)'", message), text)
    fix = None
    parts = [p.strip() for p in message.split("; ")]
    for i, part in enumerate(parts[1:], start=1):
        if _FIX.match(part) or part.startswith("or "):
            fix = "; ".join(parts[i:])
            message = "; ".join(parts[:i])
            break
    return {"line": line, "message": message, "fix": fix}


def _line_of_names(names: list[str], text: str) -> int | None:
    """The line a message's quoted names point to: where one of them is defined (``  name:``),
    else the one used on the fewest lines (the misspelt one), comments and the file's own
    ``name:`` left out."""
    lines = [("" if s.lstrip().startswith("#") else s.split(" #", 1)[0]) for s in text.splitlines()]
    own = next((s.split(":", 1)[1].strip() for s in lines if s.startswith("name:")), None)
    names = [n for n in dict.fromkeys(names) if n != own]
    for name in names:
        define = re.compile(r"^\s+" + re.escape(name) + r"\s*:")
        hit = next((i + 1 for i, s in enumerate(lines) if define.match(s)), None)
        if hit is not None:
            return hit
    best: tuple[int, int] | None = None  # (lines using it, first such line)
    for name in names:
        word = re.compile(r"(?<![\w.-])" + re.escape(name) + r"(?![\w.-])")
        uses = [i + 1 for i, s in enumerate(lines) if word.search(s)]
        if uses and (best is None or len(uses) < best[0]):
            best = (len(uses), uses[0])
    return best[1] if best else None


def _parse(text: str, where: str, base_dir: Path) -> Any:
    from ..graph import parse_pipeline

    return parse_pipeline(text, where=where, base_dir=base_dir)


def check(text: str, *, where: str, base_dir: Path) -> dict[str, Any]:
    """Parse and compile ``text`` as the file ``where``; never raises."""
    from ..graph import draw, to_svg

    try:
        parsed = _parse(text, where, base_dir)
        plan = parsed.compile().plan
    except Exception as exc:  # the studio shows it; a stack trace helps nobody here
        msg = str(exc) if isinstance(exc, BrickworkError) else f"{type(exc).__name__}: {exc}"
        return {"ok": False, "errors": [locate(msg, text, where)]}
    return {"ok": True, "errors": [], "svg": to_svg(draw(plan), standalone=False),
            "describe": plan.describe(), "example": parsed.example is not None,
            "inputs": [t.to_dict() for t in plan.inputs]}


def _plain(value: Any) -> Any:
    arr = np.asarray(value)
    if arr.dtype == object:
        return [_plain(v) if isinstance(v, np.ndarray) else (v.decode("utf-8", "replace") if isinstance(v, bytes)
                                                              else v) for v in arr]
    return arr.tolist()


def run_request(text: str, *, where: str, base_dir: Path, inputs: Any = None,
                timeout_s: float = 60.0) -> dict[str, Any]:
    """Compile ``text``, start it, run one request (``inputs``, else the file's example), and
    answer the outputs, the fallback rungs and each stage's timings; never raises."""
    checked = check(text, where=where, base_dir=base_dir)
    if not checked["ok"]:
        return {"ok": False, "errors": checked["errors"]}
    try:
        parsed = _parse(text, where, base_dir)
        if inputs is None:
            if parsed.example is None:
                raise ConfigError("the file has no 'example' request: write one in the request box")
            inputs = dict(parsed.example)
        if not isinstance(inputs, dict):
            raise ConfigError("the request must be a JSON object of tensor name to values")
        t0 = time.perf_counter()
        with parsed.compile() as pipeline:
            started = time.perf_counter()
            result = pipeline.infer(inputs, timeout_s=timeout_s)
            took = time.perf_counter() - started
            stats = pipeline.stats()
    except Exception as exc:
        msg = str(exc) if isinstance(exc, BrickworkError) else f"{type(exc).__name__}: {exc}"
        return {"ok": False, "errors": [{"line": None, "message": msg, "fix": None}]}
    stages = {name: {"batches": s["batches"], "items": s["items"], "compute_ms": s["compute_s"]["mean"] * 1000,
                     "queue_ms": s["queue_s"]["mean"] * 1000, "worker": s.get("worker")}
              for name, s in stats["stages"].items()}
    return {"ok": True, "outputs": {k: _plain(v) for k, v in result.items()}, "rungs": result.rungs,
            "stages": stages, "latency_ms": took * 1000, "start_ms": (started - t0) * 1000}


class Studio:
    """The state of one studio: the file it edits."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.where = str(path)
        self.lock = threading.Lock()  # one compile/run at a time (bricks load into this process)

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if method == "GET":
            if path in ("/", "/index.html"):
                return 200, _STATIC["studio.html"], _static("studio.html")
            if path.startswith("/static/") and path[8:] in _STATIC:
                return 200, _STATIC[path[8:]], _static(path[8:])
            if path == "/api/file":
                text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
                return self._json({"path": self.where, "text": text})
            return self._json({"error": f"no page {path}"}, 404)
        if method != "POST":
            return self._json({"error": f"{method} is not served"}, 405)
        try:
            req = json.loads(body or b"{}")
            text = req["text"]
            assert isinstance(text, str)
        except (ValueError, KeyError, AssertionError):
            return self._json({"error": 'send {"text": "..."} as JSON'}, 400)
        base = self.path.parent
        with self.lock:
            if path == "/api/check":
                return self._json(check(text, where=self.where, base_dir=base))
            if path == "/api/run":
                return self._json(run_request(text, where=self.where, base_dir=base, inputs=req.get("inputs")))
            if path == "/api/save":
                self.path.write_text(text, encoding="utf-8")
                return self._json({"saved": self.where, "check": check(text, where=self.where, base_dir=base)})
        return self._json({"error": f"no endpoint {path}"}, 404)

    @staticmethod
    def _json(obj: Any, status: int = 200) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(obj, default=_plain).encode()


def make_server(studio: Studio, host: str, port: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > _MAX_BODY:
                status, ctype, out = Studio._json({"error": "body too large"}, 413)
            else:
                body = self.rfile.read(length) if length else b""
                status, ctype, out = studio.handle(method, self.path.split("?", 1)[0], body)
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(out)))
            self.send_header("cache-control", "no-store")
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return http.server.ThreadingHTTPServer((host, port), Handler)


def serve_studio(path: str | Path, *, host: str = "127.0.0.1", port: int = 8100,
                 on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the studio for ``path`` until interrupted."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no file {str(p)!r}: the studio edits an existing pipeline file "
                          "(start from examples/quickstart/pipeline.yaml)")
    server = make_server(Studio(p), host, port)
    host_, port_ = str(server.server_address[0]), server.server_address[1]
    if on_ready is not None:
        on_ready(f"http://{host_}:{port_}/")
    try:
        server.serve_forever()
    finally:
        server.server_close()
