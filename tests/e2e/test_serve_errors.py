"""Every error status of the v2 server, through `brickwork serve` as a subprocess on loopback."""

from __future__ import annotations

import struct

import httpx
import orjson
import pytest
from tests.e2e.serve_helpers import FRONTS, served, write_models


@pytest.fixture(scope="module", params=FRONTS)
def server(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    files = write_models(folder)
    with served(files, "--http", request.param, "--max-body-bytes", "4096", cwd=folder) as s:
        with httpx.Client(base_url=s.url, timeout=10.0) as http:
            yield http


def calc_body(x, **extra):
    return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(x), 4],
                                     "data": [v for row in x for v in row]}], **extra})


def test_ok_answers_200_with_both_outputs(server):
    r = server.post("/v2/models/calc/infer", content=calc_body([[1, 2, 3, 4]], id="r1"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == "r1" and doc["model_name"] == "calc"
    out = {o["name"]: o for o in doc["outputs"]}
    assert out["y"]["data"] == [2, 4, 6, 8] and out["y"]["shape"] == [1, 4]
    assert out["total"]["data"] == [10] and out["total"]["datatype"] == "FP32"


@pytest.mark.parametrize("body, needle", [
    (b"{not json", "not valid JSON"),
    (b'{"inputs": []}', "non-empty list"),
    (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [25 * 10**10, 4],
                               "data": [1.0, 2.0, 3.0, 4.0]}]}), "1000000000000 elements"),
    (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, -4],
                               "data": [1.0, 2.0, 3.0, 4.0]}]}), "ints >= 0"),
    (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                               "data": [1.0, 2.0, 3.0]}]}), "has 4 elements, data has 3"),
    (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4],
                               "data": [1.0, 2.0, 3.0, 4.0]}]}), "expected datatype FP32"),
    (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                               "data": ["a", "b", "c", "d"]}]}), "must be numbers"),
    (orjson.dumps({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 4],
                               "data": [1.0, 2.0, 3.0, 4.0]}]}), "unknown input 'nope'"),
    (orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                               "data": [1.0, 2.0, 3.0, 4.0]}],
                   "outputs": [{"name": "zz"}]}), "unknown output 'zz'"),
])
def test_bad_input_is_400_with_a_message(server, body, needle):
    r = server.post("/v2/models/calc/infer", content=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_input_the_model_lacks_and_duplicate_input_are_400(server):  # missing: test_serve_protocol
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                     "data": [1, 2, 3, 4]}]})
    r = server.post("/v2/models/echo/infer", content=body)
    assert r.status_code == 400 and "unknown input 'x'" in r.json()["error"]
    two = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]},
                                   {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["b"]}]})
    assert server.post("/v2/models/echo/infer", content=two).status_code == 400


def test_non_utf8_bytes_where_text_is_required_is_400(server):
    raw = b"\xff\xfe"
    header = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                       "parameters": {"binary_data_size": 4 + len(raw)}}]})
    r = server.post("/v2/models/echo/infer", content=header + struct.pack("<I", len(raw)) + raw,
                    headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 400, r.text
    assert "not UTF-8" in r.json()["error"]


def test_unknown_model_and_version_are_404(server):
    r = server.post("/v2/models/nope/infer", content=calc_body([[1, 2, 3, 4]]))
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["error"]
    assert server.get("/v2/models/calc/versions/7").status_code == 404
    assert server.get("/v2/models/calc/versions/1").status_code == 200


def test_body_over_the_limit_is_413(server):
    rows = [[1.0, 2.0, 3.0, 4.0]] * 400  # ~6.5 kB of JSON > --max-body-bytes 4096
    r = server.post("/v2/models/calc/infer", content=calc_body(rows))
    assert r.status_code == 413 and "4096" in r.json()["error"]

    def chunks():  # no Content-Length: counted while reading
        yield calc_body(rows)

    r = server.post("/v2/models/calc/infer", content=chunks())
    assert r.status_code == 413
    assert server.get("/v2/health/ready").status_code == 200  # and it keeps serving


def test_model_error_is_500(server):
    r = server.post("/v2/models/calc/infer", content=calc_body([[1, 2, 500, 4]]))
    assert r.status_code == 500 and "x holds 500" in r.json()["error"]


def test_overloaded_is_503_with_retry_after(server):
    r = server.post("/v2/models/calc/infer", content=calc_body([[503, 0, 0, 0]]))
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert "busy" in r.json()["error"]


def test_deadline_from_the_request_is_504(server):
    r = server.post("/v2/models/calc/infer",
                    content=calc_body([[504, 0, 0, 0]], parameters={"timeout_s": 0.1}))
    assert r.status_code == 504, r.text


def test_wrong_method_is_405(server):
    assert server.get("/v2/models/calc/infer").status_code == 405


def test_metrics_count_requests_by_status_and_kind(server):
    server.post("/v2/models/calc/infer", content=calc_body([[1, 2, 3, 4]]))
    server.post("/v2/models/calc/infer", content=b"{")
    text = server.get("/metrics").text
    assert 'brickwork_requests_total{model="calc",code="200"}' in text
    assert 'brickwork_request_errors_total{model="calc",kind="InvalidInput"}' in text
    assert 'brickwork_request_duration_seconds_count{model="calc"}' in text
    assert 'stage="calc"' in text


def test_api_key_is_401_without_it(tmp_path):
    files = write_models(tmp_path)
    with served(files[:1], "--api-key", "s3cret", cwd=tmp_path) as s, httpx.Client(base_url=s.url) as http:
        assert http.get("/v2/health/ready").status_code == 200  # probes need no key
        assert http.get("/v2/health/live").status_code == 200
        for path in ("/v2", "/v2/models/calc/ready", "/metrics"):  # everything else does
            assert http.get(path).status_code == 401, path
        body = calc_body([[1, 2, 3, 4]])
        r = http.post("/v2/models/calc/infer", content=body)
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert http.post("/v2/models/calc/infer", content=body,
                         headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/v2/models/calc").status_code == 401
        assert http.post("/v2/models/calc/infer", content=body,
                         headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/metrics", headers={"X-API-Key": "s3cret"}).status_code == 200
