"""The live dashboard ``brickwork serve`` answers at ``/dashboard`` (``--no-dashboard``: off).

    GET  /dashboard                 the page (static HTML, JS and CSS from ``static/``)
    GET  /dashboard/static/{file}   its script and style sheet
    GET  /dashboard/api/graph       each model's compiled graph as SVG (stage boxes carry
                                    ``data-stage``), its stages and fallback ladders
    GET  /dashboard/api/stats       each model's live figures: the engine's per-stage stats
                                    (utilisation, queue depth, batch sizes, p50/p99 queue and
                                    compute time, items/s, restarts, breaker state), answers per
                                    fallback rung, request counts and latency, readiness
    GET  /dashboard/login           a form for the API key (only when the server has one)
    POST /dashboard/login           checks the key, sets an HttpOnly cookie, back to the page

With ``--api-key`` every route but the login form needs the key: the usual header, or the
cookie the login form sets (an HMAC of the key, never the key). The page polls the stats
once a second and computes rates over the last interval itself; nothing is loaded from
anywhere but this server.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from ._errors import JSON, Reply, plain_error
from ._metrics import _BUCKET0, _CODE_SLOT, _COUNT, _SUM, LATENCY_BUCKETS_S

if TYPE_CHECKING:
    from ._app import App, Model

__all__ = ["Dashboard"]

_COOKIE = b"brickwork_dashboard"
_TYPES = {"html": b"text/html; charset=utf-8", "js": b"text/javascript; charset=utf-8",
          "css": b"text/css; charset=utf-8", "svg": b"image/svg+xml"}
_NO_STORE = (b"cache-control", b"no-store")
_DUMP = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS  # batch sizes are int keys
_STATIC = ("dashboard.html", "dashboard.js", "dashboard.css", "studio.html", "studio.js",
           "studio.css")

_LOGIN = b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>brickwork dashboard</title>
<style>body{font:14px system-ui,sans-serif;margin:4em auto;max-width:24em;color:#1a202c}
input{font:inherit;padding:.4em;width:100%;box-sizing:border-box;margin:.5em 0}
button{font:inherit;padding:.4em 1em}</style></head><body>
<h1>brickwork</h1><p>This server needs its API key.</p>
<form method="post" action="/dashboard/login"><input type="password" name="key" autofocus
 placeholder="API key"><button type="submit">Open the dashboard</button></form></body></html>"""


def static_file(name: str) -> bytes:
    """A file of the package's ``server/static`` folder."""
    return resources.files("brickwork.server").joinpath("static", name).read_bytes()


class Dashboard:
    """The ``/dashboard`` routes of one :class:`App`."""

    def __init__(self, app: App) -> None:
        self.app = app
        key = app.config.api_key
        self._token = (hmac.new(key.encode(), b"brickwork dashboard", hashlib.sha256).hexdigest().encode()
                       if key else None)
        self._graphs: dict[str, tuple[int, bytes]] = {}  # model → (id of its plan, graph JSON)

    def handle(self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Reply:
        if path == "/dashboard/login":
            return self._login(method, body)
        if not self._allowed(headers):
            if path in ("/dashboard", "/dashboard/"):
                return 303, [(b"location", b"/dashboard/login"), _NO_STORE], b""
            return plain_error(401, "missing or wrong API key: send 'Authorization: Bearer <key>' "
                                    "or log in at /dashboard/login")
        if method not in ("GET", "HEAD"):
            return plain_error(405, f"{path} takes GET", (b"allow", b"GET"))
        if path in ("/dashboard", "/dashboard/"):
            return 200, [(b"content-type", _TYPES["html"]), _NO_STORE], static_file("dashboard.html")
        if path.startswith("/dashboard/static/"):
            name = path[len("/dashboard/static/"):]
            if name not in _STATIC:
                return plain_error(404, f"no file {name!r}")
            return 200, [(b"content-type", _TYPES[name.rsplit(".", 1)[1]]), _NO_STORE], static_file(name)
        if path == "/dashboard/api/graph":
            return 200, [JSON, _NO_STORE], self._graph()
        if path == "/dashboard/api/stats":
            return 200, [JSON, _NO_STORE], orjson.dumps(self.stats(), option=_DUMP)
        return plain_error(404, f"no endpoint {path}; the dashboard is at /dashboard")

    # -- auth ------------------------------------------------------------------------------
    def early(self, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
        """May this request's body be read without the API key header (the server's early 401)?
        The login form may (it carries the key in its body), the page (it redirects to the form),
        and a request with the cookie."""
        return path in ("/dashboard", "/dashboard/", "/dashboard/login") or self._allowed(headers)

    def _allowed(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if self._token is None:
            return True
        if self.app._authorised(headers):
            return True
        for k, v in headers:
            if k == b"cookie":
                for part in v.split(b";"):
                    name, _, value = part.strip().partition(b"=")
                    if name == _COOKIE and hmac.compare_digest(value, self._token):
                        return True
        return False

    def _login(self, method: str, body: bytes) -> Reply:
        html = (b"content-type", _TYPES["html"])
        if method in ("GET", "HEAD"):
            return 200, [html, _NO_STORE], _LOGIN
        if method != "POST":
            return plain_error(405, "/dashboard/login takes GET or POST", (b"allow", b"GET, POST"))
        key = parse_qs(body.decode("utf-8", "replace")).get("key", [""])[0].encode()
        wanted = (self.app.config.api_key or "").encode()
        if self._token is None or not hmac.compare_digest(key, wanted):
            return 401, [html, _NO_STORE], _LOGIN.replace(b"<p>This server", b"<p><b>Wrong key.</b> This server")
        cookie = _COOKIE + b"=" + self._token + b"; Path=/dashboard; HttpOnly; SameSite=Strict"
        return 303, [(b"location", b"/dashboard"), (b"set-cookie", cookie), _NO_STORE], b""

    # -- data ------------------------------------------------------------------------------
    def _graph(self) -> bytes:
        from ..graph import draw, to_svg

        out = []
        for name, model in self.app.models.items():
            plan = model.pipeline.plan
            cached = self._graphs.get(name)
            if cached is None or cached[0] != id(plan):
                pic = draw(plan)
                ladders = _ladders(plan)
                entry = orjson.dumps({"name": name, "svg": to_svg(pic, standalone=False),
                                      "stages": pic.stages(), "ladders": ladders})
                self._graphs[name] = cached = (id(plan), entry)
            out.append(cached[1])
        return b'{"models":[' + b",".join(out) + b"]}"

    def stats(self) -> dict[str, Any]:
        """The figures the page polls, per model."""
        models = {}
        for name, model in self.app.models.items():
            why = self.app._unready(model)
            models[name] = {"ready": not why, "unready": why,
                            "requests": _requests(model), "pipeline": model.pipeline.stats()}
        return {"time": time.time(), "models": models}


def _ladders(plan: Any) -> dict[str, list[str]]:
    from .. import plan as p

    out: dict[str, list[str]] = {}

    def walk(step: Any) -> None:
        if isinstance(step, p.Ladder):
            out[step.name] = [label for label, _ in step.rungs] + (["default"] if step.default is not None else [])
        for child in _children(step):
            walk(child)

    walk(plan.root)
    return out


def _children(step: Any) -> list[Any]:
    from .. import plan as p

    if isinstance(step, p.Seq | p.Par):
        return list(step.steps)
    if isinstance(step, p.Route):
        return [s for _, s in step.cases] + ([step.default] if step.default is not None else [])
    if isinstance(step, p.Vote):
        return list(step.members)
    if isinstance(step, p.Ladder):
        return [s for _, s in step.rungs]
    if isinstance(step, p.Scope):
        return [step.step]
    return []


def _requests(model: Model) -> dict[str, Any]:
    """The front's figures of one model: requests, answered 200, in flight, latency (mean and
    p50/p99 estimated from the Prometheus histogram's buckets: the upper edge of the bucket)."""
    v = model.metrics.values
    count = int(v[_COUNT])
    buckets = [int(v[_BUCKET0 + i]) for i in range(len(LATENCY_BUCKETS_S) + 1)]
    return {"count": count, "ok": int(v[_CODE_SLOT[200]]), "in_flight": model.metrics.in_flight,
            "mean_s": v[_SUM] / count if count else 0.0,
            "p50_s": _quantile(buckets, 0.5), "p99_s": _quantile(buckets, 0.99)}


def _quantile(buckets: list[int], q: float) -> float | None:
    total = sum(buckets)
    if not total:
        return 0.0
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= q * total:
            return LATENCY_BUCKETS_S[i] if i < len(LATENCY_BUCKETS_S) else None  # None: over the last
    return None
