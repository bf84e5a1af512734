"""The live dashboard of `brickwork serve`, in headless Chromium: the page loads with no console
errors, shows every stage of the served pipeline in its graph and table, and its figures change
under load (requests, colours, the bottleneck, a fallback rung answering). With --api-key every
dashboard route needs the key (header or the login form's cookie); --no-dashboard turns it off.

BRICKWORK_DOCS_SCREENSHOTS=1 also writes the screenshot to docs/dashboard.png."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.e2e.browser import CHROMIUM, Browser
from tests.e2e.serve_helpers import served

from brickwork.graph import load_graph

ROOT = Path(__file__).resolve().parents[2]
SHOWCASE = ROOT / "examples" / "showcase" / "pipeline.yaml"
TEXTS = ["I love this, it is great!", "terrible and awful", "das ist gut", "bad bad worst"]


def _load(url: str, seconds: float, threads: int = 6) -> list[int]:
    """Infer requests from ``threads`` clients for ``seconds``; the status codes seen."""
    codes: list[int] = []
    end = time.monotonic() + seconds

    def client(i: int) -> None:
        with httpx.Client(timeout=10) as c:
            n = 0
            while time.monotonic() < end:
                texts = [TEXTS[(i + n + k) % len(TEXTS)] for k in range(1 + n % 3)]
                r = c.post(f"{url}/v2/models/showcase/infer", json={"inputs": [
                    {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]})
                codes.append(r.status_code)
                n += 1

    ts = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return codes


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make test installs Debian's chromium)")
def test_dashboard_in_a_browser(tmp_path: Path) -> None:
    stages = set(load_graph(SHOWCASE).compile().plan.stages)
    with served([SHOWCASE], cwd=ROOT) as srv, Browser(tmp_path / "chromium") as page:
        page.navigate(srv.url + "/dashboard")
        page.wait_for("document.querySelectorAll('g.node.stage').length > 0")
        drawn = set(page.evaluate("[...document.querySelectorAll('g.node.stage')].map(g => g.dataset.stage)"))
        rows = set(page.evaluate("[...document.querySelectorAll('table.stages tr[data-stage]')]"
                                 ".map(r => r.dataset.stage)"))
        assert drawn == stages and rows == stages
        page.wait_for("document.getElementById('status').dataset.state === 'live'")
        before = page.evaluate("document.querySelector('.summary').textContent")
        assert before.startswith("0 requests"), before

        codes: list[int] = []
        loader = threading.Thread(target=lambda: codes.extend(_load(srv.url, 6.0)))
        loader.start()
        try:
            # under load: the request count moves, the slow member is the bottleneck, stage boxes
            # are coloured, the flaky scorer's fallback rung answers
            page.wait_for("!document.querySelector('.summary').textContent.startsWith('0 requests')")
            page.wait_for("document.querySelector('section.model').dataset.bottleneck === 'emphasis'", 20)
            page.wait_for("document.querySelector('g[data-stage=decide] .shape').getAttribute('fill')"
                          ".startsWith('hsl(')")
            page.wait_for("/neutral: \\d+ \\/ [1-9]/.test(document.querySelector('table.fallbacks').textContent)", 20)
            live = page.evaluate("document.querySelector('g[data-stage=emphasis] text.live').textContent")
            assert "%" in live and "/s" in live, live
            shot = tmp_path / "dashboard.png"
            page.screenshot(shot)
        finally:
            loader.join()
        after = page.evaluate("document.querySelector('.summary').textContent")
        assert after != before
        assert codes and set(codes) == {200}, set(codes)
        assert page.errors == [], page.errors
        assert shot.read_bytes()[:4] == b"\x89PNG"
        if os.environ.get("BRICKWORK_DOCS_SCREENSHOTS"):
            shutil.copy(shot, ROOT / "docs" / "dashboard.png")


def test_dashboard_needs_the_api_key_and_can_be_turned_off() -> None:
    with served([SHOWCASE], "--api-key", "s3cret", cwd=ROOT) as srv, httpx.Client(base_url=srv.url) as c:
        r = c.get("/dashboard")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        assert c.get("/dashboard/api/stats").status_code == 401
        assert c.get("/dashboard/static/dashboard.js").status_code == 401
        assert c.get("/dashboard/login").status_code == 200  # the form itself is open
        assert c.post("/dashboard/login", data={"key": "wrong"}).status_code == 401
        ok = c.post("/dashboard/login", data={"key": "s3cret"})
        assert ok.status_code == 303 and "HttpOnly" in ok.headers["set-cookie"]
        assert "s3cret" not in ok.headers["set-cookie"]  # an HMAC of the key, not the key
        assert c.get("/dashboard/api/stats").status_code == 200  # the client kept the cookie
        c.cookies.clear()
        assert c.get("/dashboard/api/stats").status_code == 401
        stats = c.get("/dashboard/api/stats", headers={"Authorization": "Bearer s3cret"})
        assert stats.status_code == 200 and "showcase" in stats.json()["models"]
        graph = c.get("/dashboard/api/graph", headers={"X-API-Key": "s3cret"}).json()
        assert graph["models"][0]["ladders"] == {"flaky": ["flaky", "neutral"]}
    with served([SHOWCASE], "--no-dashboard", cwd=ROOT) as srv:
        assert httpx.get(srv.url + "/dashboard").status_code == 404
        assert httpx.get(srv.url + "/v2/models/showcase").status_code == 200
