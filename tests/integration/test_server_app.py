"""The v2 server in a thread on a free port: binary tensors on the wire, compression, fallback
rungs in the response, readiness while draining, the async client."""

from __future__ import annotations

import asyncio
import gzip
import struct

import httpx
import numpy as np
import orjson
import pytest

import brickwork as bw
from brickwork.client import AsyncClient, Client
from brickwork.server import ServerThread


def double(x: float) -> float:
    return 2 * x


def busy(x: float) -> float:
    raise bw.Overloaded("primary is down")


def spare(x: float) -> float:
    return -x


@pytest.fixture(scope="module")
def server():
    main = bw.function(double, outputs="y").compile(name="double")
    ladder = bw.function(busy, outputs="y").fallback(bw.function(spare, outputs="y"), name="ladder")
    with ServerThread([main, ladder.compile(name="degraded")], max_body_bytes=10_000) as s:
        yield s


def binary_request(x: np.ndarray, **extra) -> tuple[bytes, dict[str, str]]:
    raw = x.astype("<f8").tobytes()
    header = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": list(x.shape),
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "parameters": {"binary_data_output": True}, **extra})
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def test_binary_in_binary_out_on_the_wire(server):
    x = np.array([1.5, -2.0, 3.25])
    body, headers = binary_request(x)
    r = httpx.post(server.url + "/v2/models/double/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    doc = orjson.loads(r.content[:n])
    (out,) = doc["outputs"]
    assert out["parameters"]["binary_data_size"] == 24 and "data" not in out
    np.testing.assert_array_equal(np.frombuffer(r.content[n:], "<f8"), 2 * x)


def test_binary_framing_errors_are_400(server):
    body, headers = binary_request(np.array([1.0, 2.0]))
    url = server.url + "/v2/models/double/infer"
    r = httpx.post(url, content=body + b"junk", headers=headers)
    assert r.status_code == 400 and "after the last binary tensor" in r.json()["error"]
    r = httpx.post(url, content=body, headers={"Inference-Header-Content-Length": str(len(body) + 1)})
    assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]
    r = httpx.post(url, content=body[:-4], headers=headers)
    assert r.status_code == 400 and "runs past the end" in r.json()["error"]


def test_gzip_bodies_are_accepted_and_bombs_are_413(server):
    url = server.url + "/v2/models/double/infer"
    doc = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]}]}
    r = httpx.post(url, content=gzip.compress(orjson.dumps(doc)), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [2.0, 4.0]
    bomb = gzip.compress(b" " * 1_000_000)  # ~1 kB on the wire, 1 MB inflated > max_body_bytes
    r = httpx.post(url, content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413
    r = httpx.post(url, content=b"{}", headers={"Content-Encoding": "br"})
    assert r.status_code == 400 and "not supported" in r.json()["error"]


def test_the_rung_that_answered_is_in_the_response(server):
    with Client(server.url) as client:
        out = client.infer("degraded", {"x": [1.0, 2.0]})
        np.testing.assert_array_equal(out["y"], [-1.0, -2.0])
        assert out.rungs == {"ladder": "spare"}
        plain = client.infer("double", {"x": [1.0]})
        assert plain.rungs == {} and plain.model_name == "double"


def test_struct_sizes_in_bytes_inputs(server):
    # a BYTES binary tensor whose element claims more bytes than were sent, to a model that
    # takes FP64: refused on the datatype before its bytes are looked at (the lying length
    # itself: tests/unit/test_protocol_tensors.py)
    header = orjson.dumps({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1],
                                       "parameters": {"binary_data_size": 6}}]})
    body = header + struct.pack("<I", 100) + b"ab"
    r = httpx.post(server.url + "/v2/models/double/infer", content=body,
                   headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 400 and "expected datatype FP64" in r.json()["error"]


def test_unknown_paths_and_server_metadata(server):
    assert httpx.get(server.url + "/v3").status_code == 404
    assert httpx.get(server.url + "/v2/models/double/nope").status_code == 404
    meta = httpx.get(server.url + "/v2").json()
    assert meta["name"] == "brickwork" and "binary_tensor_data" in meta["extensions"]


def test_async_client_json_and_binary(server):
    async def go():
        async with AsyncClient(server.url) as client:
            assert await client.server_ready() and await client.model_ready("double")
            outs = await asyncio.gather(*(client.infer("double", {"x": [float(i)]}, binary=i % 2 == 0)
                                          for i in range(20)))
            return [float(o["y"][0]) for o in outs]

    assert asyncio.run(go()) == [2.0 * i for i in range(20)]


def test_ready_turns_503_while_draining():
    with ServerThread(bw.function(double, outputs="y").compile(name="d")) as s:
        assert httpx.get(s.url + "/v2/health/ready").status_code == 200
        s.app.draining = True
        r = httpx.get(s.url + "/v2/health/ready")
        assert r.status_code == 503 and r.json()["error"] == "draining"
        assert httpx.get(s.url + "/v2/health/live").status_code == 200
        assert httpx.get(s.url + "/v2/models/d/ready").status_code == 503


def test_readiness_follows_the_engine_open_circuit_means_503():
    node = bw.function(busy, outputs="y", breaker=bw.Breaker(failures=1, reset_after_s=60.0))
    with ServerThread(node.compile(name="flaky")) as s, httpx.Client(base_url=s.url) as http:
        assert http.get("/v2/models/flaky/ready").status_code == 200
        body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]})
        assert http.post("/v2/models/flaky/infer", content=body).status_code == 503
        r = http.get("/v2/models/flaky/ready")
        assert r.status_code == 503 and "circuit" in r.json()["error"]
        assert http.get("/v2/health/ready").status_code == 503
