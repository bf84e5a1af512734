"""Remote bricks from YAML, through two `brickwork serve` processes: the front pipeline calls a
model on an upstream `brickwork serve` (a `v2` brick, signature read from its metadata), then a
plain JSON endpoint (an `http` brick with a declared mapping). Upstream failures are 502."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import httpx
import orjson
import pytest
from tests.e2e.serve_helpers import served, stop, write_models
from tests.fixtures.plain_http import plain_http_server

FRONT_YAML = """name: front
outputs: [y, grade]
bricks:
  calc: {{v2: "{upstream}", model: calc, call_timeout_s: 5.0}}
  grade:
    http: "{plain}/grade"
    inputs: [{{name: total, datatype: FP32, shape: [-1]}}]
    outputs: [{{name: grade, datatype: BYTES, shape: [-1]}}]
    request: {{value: "{{total}}"}}
    response: {{grade: "result.grade"}}
    call_timeout_s: 5.0
graph: calc >> grade
"""


class _Grader(BaseHTTPRequestHandler):
    """POST /grade {"value": v} -> {"result": {"grade": "big" | "small"}}; 13: 503."""

    def do_POST(self):
        value = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["value"]
        if value == 13:
            status, doc = 503, {"detail": "grader under maintenance"}
        else:
            status, doc = 200, {"result": {"grade": "big" if value >= 10 else "small"}}
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def plain():
    with plain_http_server(_Grader) as url:
        yield url


def infer(http: httpx.Client, rows: list[list[float]]) -> httpx.Response:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}]}
    return http.post("/v2/models/front/infer", content=orjson.dumps(body))


def test_front_server_calls_an_upstream_server_and_a_json_endpoint(tmp_path, plain):
    up_dir, front_dir = tmp_path / "up", tmp_path / "front"
    up_dir.mkdir()
    front_dir.mkdir()
    calc_yaml = write_models(up_dir)[0]
    with served([calc_yaml], cwd=up_dir) as upstream:
        (front_dir / "front.yaml").write_text(FRONT_YAML.format(upstream=upstream.url, plain=plain))
        with served([front_dir / "front.yaml"], cwd=front_dir) as front, \
                httpx.Client(base_url=front.url, timeout=30.0) as http:
            meta = http.get("/v2/models/front").json()  # the signature came from the upstream
            assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
            assert [o["name"] for o in meta["outputs"]] == ["y", "grade"]

            r = infer(http, [[1, 2, 3, 4], [0, 0, 0, 1]])
            assert r.status_code == 200, r.text
            out = {o["name"]: o for o in r.json()["outputs"]}
            assert out["y"]["data"] == [2, 4, 6, 8, 0, 0, 0, 2]
            assert out["grade"] == {"name": "grade", "datatype": "BYTES", "shape": [2],
                                    "data": ["big", "small"]}

            r = infer(http, [[1, 2, 500, 4]])  # the upstream model raises: its 500 is our 502
            assert r.status_code == 502 and "x holds 500" in r.json()["error"], r.text
            r = infer(http, [[1, 2, 3, 7]])  # total 13: the JSON endpoint answers 503
            assert r.status_code == 502 and "grader under maintenance" in r.json()["error"], r.text
            assert "HTTP 503" in r.json()["error"]

            stop(upstream.proc)  # the upstream is gone: 502 naming it, and the front stays up
            r = infer(http, [[1, 2, 3, 4]])
            assert r.status_code == 502 and "cannot reach" in r.json()["error"], r.text
            assert http.get("/v2/health/live").status_code == 200
