"""`brickwork serve --access-log --log-format json`: one JSON line per infer request with
method, path, model, status, latency, request id and rungs; a line for every 5xx with its cause;
worker deaths, replacements and breaker transitions; `--log-level warning` drops the info lines."""

from __future__ import annotations

import json
import time

import httpx
from tests.e2e import serve_helpers as sh

CRASHY = """name: crashy
bricks:
  f: {fake: true, crash_on: 7.0, worker: process, breaker: {failures: 1, reset_after_s: 0.2},
      fallback: [{default: {y: [-1.0]}}]}
graph: f
"""


def body(x: float, rid: str | None = None) -> dict:
    doc: dict = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [x]}]}
    if rid:
        doc["id"] = rid
    return doc


def served_lines(files, *args, cwd, requests):
    s = sh.start(files, *args, cwd=cwd)
    try:
        with httpx.Client(timeout=30) as http:
            requests(http, s.url)
    finally:
        sh.stop(s.proc)
    err = s.proc.stderr.read() if s.proc.stderr else ""
    return err.splitlines()


def test_json_access_log_and_5xx_lines(tmp_path):
    calc, _ = sh.write_models(tmp_path)
    got = {}

    def requests(http, url):
        ok = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}],
              "id": "req-ok"}
        got["ok"] = http.post(f"{url}/v2/models/calc/infer", json=ok).status_code
        bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [500, 0, 0, 0]}]}
        got["bad"] = http.post(f"{url}/v2/models/calc/infer", json=bad,
                               headers={"x-request-id": "hdr-7"}).status_code

    lines = served_lines([calc], "--access-log", "--log-format", "json", cwd=tmp_path, requests=requests)
    assert got == {"ok": 200, "bad": 500}
    docs = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(docs) == len([line for line in lines if line.strip()]), lines  # every line is JSON
    access = [d for d in docs if d["logger"] == "brickwork.access"]
    assert [(d["status"], d["request_id"], d["model"], d["method"], d["path"]) for d in access] == [
        (200, "req-ok", "calc", "POST", "/v2/models/calc/infer"),
        (500, "hdr-7", "calc", "POST", "/v2/models/calc/infer")]
    assert all(d["latency_ms"] > 0 and "ts" in d and d["rungs"] == {} for d in access)
    errors = [d for d in docs if d["logger"] == "brickwork.server" and d.get("status") == 500]
    assert len(errors) == 1 and errors[0]["level"] == "error"
    assert "ModelError" in errors[0]["cause"] and "x holds 500" in errors[0]["cause"]
    assert errors[0]["request_id"] == "hdr-7"


def test_worker_death_replacement_and_breaker_are_logged(tmp_path):
    path = tmp_path / "crashy.yaml"
    path.write_text(CRASHY)

    def requests(http, url):
        r = http.post(f"{url}/v2/models/crashy/infer", json=body(7.0, "boom"))
        assert r.status_code == 200 and r.json()["parameters"]["rung.f"] == "default"
        deadline = time.monotonic() + 30
        while http.get(f"{url}/v2/health/ready").status_code != 200:  # replaced and half-open
            assert time.monotonic() < deadline
        time.sleep(0.3)
        assert http.post(f"{url}/v2/models/crashy/infer", json=body(1.0)).status_code == 200

    lines = served_lines([path], "--access-log", cwd=tmp_path, requests=requests)
    text = "\n".join(lines)

    def logged(level: str, *words: str) -> bool:
        return any(f" {level} brickwork." in line and all(w in line for w in words) for line in lines)

    assert logged("WARNING", "'f'", "worker 0", "died", "replacing it"), text  # the death, with its cause
    assert logged("INFO", "'f'", "worker 0", "replaced"), text
    assert logged("WARNING", "breaker", "'f'", "closed -> open"), text
    assert logged("INFO", "breaker", "'f'", "open -> half_open"), text
    assert logged("INFO", "breaker", "'f'", "half_open -> closed"), text
    assert "rungs=f=default" in text and "id=boom" in text


def test_log_level_warning_hides_info_and_access_is_off_by_default(tmp_path):
    calc, _ = sh.write_models(tmp_path)

    def requests(http, url):
        x = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        assert http.post(f"{url}/v2/models/calc/infer", json=x).status_code == 200

    lines = served_lines([calc], "--log-level", "warning", cwd=tmp_path, requests=requests)
    assert not [line for line in lines if "brickwork.access" in line or " INFO " in line], lines
