"""The protocol details of issue 4, each through `brickwork serve` as a subprocess on loopback:
nested JSON data, the /versions/{v} paths, the request id, binary_data_output, a missing input
of a two-input model, a real 503 from a full stage queue (with Retry-After), the deadline a
request carries, the fallback rung in the response, and the /metrics series."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import orjson
import pytest
from tests.e2e.serve_helpers import FRONTS, served, write_models

EXTRA_PY = '''
import brickwork as bw


def pair(a: float, b: float) -> float:
    return a + b


def primary(x: float) -> float:
    if x < 0:
        raise bw.Overloaded("primary is down", retry_after_s=1.0)
    return 10 * x


def spare(x: float) -> float:
    return -x
'''

PAIR_YAML = """name: pair
bricks:
  pair: {python: "extra:pair", outputs: s}
graph: pair
"""

# One replica, one item per batch, one request may wait: the third concurrent request is refused.
SLOW_YAML = """name: slow
bricks:
  slow: {fake: true, delay_s: 1.0, worker: thread,
         batching: {max_batch_size: 1, max_queue_size: 1}}
graph: slow
"""

LADDER_YAML = """name: ladder
bricks:
  primary: {python: "extra:primary", outputs: y, fallback: [spare]}
  spare: {python: "extra:spare", outputs: y}
graph: primary
"""


@pytest.fixture(scope="module", params=FRONTS)
def server(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("protocol")
    files = write_models(folder)
    (folder / "extra.py").write_text(EXTRA_PY)
    for name, text in {"pair": PAIR_YAML, "slow": SLOW_YAML, "ladder": LADDER_YAML}.items():
        (folder / f"{name}.yaml").write_text(text)
        files.append(folder / f"{name}.yaml")
    with served(files, "--http", request.param, cwd=folder) as s, httpx.Client(base_url=s.url, timeout=30.0) as http:
        yield http


def tensor(name, datatype, shape, data):
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def test_every_model_is_listed_and_ready(server):
    index = server.post("/v2/repository/index").json()
    assert {m["name"]: m["state"] for m in index} == {
        "calc": "READY", "echo": "READY", "pair": "READY", "slow": "READY", "ladder": "READY"}
    for name in ("calc", "pair", "slow", "ladder"):
        assert server.get(f"/v2/models/{name}/ready").status_code == 200


def test_nested_json_data_is_accepted_like_flat(server):
    nested = tensor("x", "FP32", [2, 4], [[1, 2, 3, 4], [5, 6, 7, 8]])
    flat = tensor("x", "FP32", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8])
    a = server.post("/v2/models/calc/infer", content=orjson.dumps({"inputs": [nested]}))
    b = server.post("/v2/models/calc/infer", content=orjson.dumps({"inputs": [flat]}))
    assert a.status_code == b.status_code == 200, a.text
    assert a.json()["outputs"] == b.json()["outputs"]
    y = next(o for o in a.json()["outputs"] if o["name"] == "y")
    assert y["shape"] == [2, 4] and y["data"] == [2, 4, 6, 8, 10, 12, 14, 16]  # flat, row-major
    ragged = tensor("x", "FP32", [2, 4], [[1, 2, 3, 4], [5, 6, 7]])
    r = server.post("/v2/models/calc/infer", content=orjson.dumps({"inputs": [ragged]}))
    assert r.status_code == 400, r.text


def test_versioned_paths(server):
    body = orjson.dumps({"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]})
    r = server.post("/v2/models/calc/versions/1/infer", content=body)
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    assert server.get("/v2/models/calc/versions/1/ready").status_code == 200
    assert server.get("/v2/models/calc/versions/1").json()["name"] == "calc"
    r = server.post("/v2/models/calc/versions/2/infer", content=body)
    assert r.status_code == 404 and "no version '2'" in r.json()["error"]


def test_request_id_is_echoed_in_json_and_binary_responses(server):
    doc = {"id": "req-7", "inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]}
    assert server.post("/v2/models/calc/infer", content=orjson.dumps(doc)).json()["id"] == "req-7"
    doc["parameters"] = {"binary_data_output": True}
    r = server.post("/v2/models/calc/infer", content=orjson.dumps(doc))
    n = int(r.headers["inference-header-content-length"])
    assert orjson.loads(r.content[:n])["id"] == "req-7"
    assert "id" not in server.post("/v2/models/calc/infer", content=orjson.dumps(
        {"inputs": doc["inputs"]})).json()


def test_binary_data_output_returns_every_output_binary(server):
    x = [[1.5, -2.0, 3.25, 0.0]]
    doc = {"inputs": [tensor("x", "FP32", [1, 4], x)], "parameters": {"binary_data_output": True}}
    r = server.post("/v2/models/calc/infer", content=orjson.dumps(doc))
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    outputs = orjson.loads(r.content[:n])["outputs"]
    assert [(o["name"], o["parameters"]["binary_data_size"]) for o in outputs] == [("y", 16), ("total", 4)]
    assert all("data" not in o for o in outputs)
    raw = r.content[n:]
    np.testing.assert_array_equal(np.frombuffer(raw[:16], "<f4"), [3.0, -4.0, 6.5, 0.0])
    np.testing.assert_array_equal(np.frombuffer(raw[16:], "<f4"), [2.75])
    # a per-output binary_data: false overrides it, and only the requested output comes back
    doc["outputs"] = [{"name": "total", "parameters": {"binary_data": False}}]
    r = server.post("/v2/models/calc/infer", content=orjson.dumps(doc))
    assert r.headers["content-type"] == "application/json"
    assert r.json()["outputs"] == [{"name": "total", "datatype": "FP32", "shape": [1], "data": [2.75]}]


def test_missing_input_is_400_naming_it(server):
    r = server.post("/v2/models/pair/infer",
                    content=orjson.dumps({"inputs": [tensor("a", "FP64", [1], [1.0])]}))
    assert r.status_code == 400 and "missing input(s) ['b']" in r.json()["error"]
    both = {"inputs": [tensor("a", "FP64", [2], [1.0, 2.0]), tensor("b", "FP64", [2], [0.5, 0.5])]}
    r = server.post("/v2/models/pair/infer", content=orjson.dumps(both))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1.5, 2.5]


def test_full_stage_queue_is_503_with_retry_after(server):
    """Six concurrent requests at a stage that runs one (1 s each) and queues one."""
    body = orjson.dumps({"inputs": [tensor("x", "FP32", [1], [1.0])]})
    replies: list[httpx.Response] = []
    gate = threading.Barrier(6)

    def call() -> None:
        with httpx.Client(timeout=30.0) as http:
            gate.wait()
            replies.append(http.post(f"{server.base_url}/v2/models/slow/infer", content=body))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in replies)
    assert len(codes) == 6 and set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
    for r in replies:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1
            assert "queue is full" in r.json()["error"] and "max_queue_size=1" in r.json()["error"]
        else:
            assert r.json()["outputs"][0]["data"] == [1.0]
    text = server.get("/metrics").text
    assert 'brickwork_request_errors_total{model="slow",kind="Overloaded"}' in text
    assert 'brickwork_requests_total{model="slow",code="503"}' in text


def test_request_timeout_is_the_deadline_and_answers_on_time(server):
    body = {"inputs": [tensor("x", "FP32", [1, 4], [504, 0, 0, 0])]}  # the model sleeps 1 s
    for params in ({"timeout_s": 0.2}, {"timeout": 200_000}):  # seconds / microseconds
        t0 = time.monotonic()
        r = server.post("/v2/models/calc/infer", content=orjson.dumps({**body, "parameters": params}))
        took = time.monotonic() - t0
        assert r.status_code == 504, r.text
        assert took < 0.8, f"504 after {took:.2f} s; the deadline was 0.2 s"
    r = server.post("/v2/models/calc/infer",
                    content=orjson.dumps({**body, "parameters": {"timeout_s": -1}}))
    assert r.status_code == 400 and "timeout" in r.json()["error"]


def test_the_fallback_rung_is_a_response_parameter(server):
    def ask(x: float) -> dict:
        r = server.post("/v2/models/ladder/infer",
                        content=orjson.dumps({"inputs": [tensor("x", "FP64", [1], [x])]}))
        assert r.status_code == 200, r.text
        return r.json()

    degraded = ask(-2.0)
    assert degraded["parameters"] == {"rung.primary": "spare"}
    assert degraded["outputs"][0]["data"] == [2.0]
    healthy = ask(3.0)
    assert healthy["outputs"][0]["data"] == [30.0]
    assert healthy["parameters"] == {"rung.primary": "primary"}


def test_metrics_have_model_and_stage_series(server):
    body = orjson.dumps({"inputs": [tensor("x", "FP32", [3, 4], list(range(12)))]})
    assert server.post("/v2/models/calc/infer", content=body).status_code == 200
    server.post("/v2/models/calc/infer", content=orjson.dumps(
        {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 500, 4])]}))  # the model raises: 500
    r = server.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    for series in (
        'brickwork_requests_total{model="calc",code="200"}',
        'brickwork_requests_total{model="calc",code="500"}',
        'brickwork_request_errors_total{model="calc",kind="ModelError"}',
        'brickwork_requests_in_flight{model="calc"} 0',
        'brickwork_request_duration_seconds_bucket{model="calc",le="+Inf"}',
        'brickwork_stage_requests_total{model="calc",stage="calc"}',
        'brickwork_stage_queue_seconds{model="calc",stage="calc",quantile="0.99"}',
        'brickwork_stage_compute_seconds{model="calc",stage="calc",quantile="0.5"}',
        'brickwork_stage_batch_sizes_total{model="calc",stage="calc",size="3"}',
        'brickwork_stage_errors_total{model="calc",stage="calc",kind="ModelError"}',
        'brickwork_stage_items_per_second{model="calc",stage="calc"}',
        'brickwork_fallback_answers_total{model="ladder",ladder="primary",rung="spare"}',
    ):
        assert series in text, series
    for line in text.splitlines():  # every sample line is `name{labels} number`
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_server_timeout_is_the_deadline_of_requests_that_set_none(tmp_path):
    files = write_models(tmp_path)
    body = {"inputs": [tensor("x", "FP32", [1, 4], [504, 0, 0, 0])]}  # the model sleeps 1 s
    with served(files[:1], "--timeout-s", "0.2", cwd=tmp_path) as s, \
            httpx.Client(base_url=s.url, timeout=30.0) as http:
        t0 = time.monotonic()
        r = http.post("/v2/models/calc/infer", content=orjson.dumps(body))
        assert r.status_code == 504 and time.monotonic() - t0 < 0.8, r.text
        r = http.post("/v2/models/calc/infer",  # a request's own timeout takes precedence
                      content=orjson.dumps({**body, "parameters": {"timeout_s": 5.0}}))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("binary", [False, True])
def test_the_client_sync_and_async_json_and_binary(server, binary):
    from brickwork.client import AsyncClient, Client
    from brickwork.errors import DeadlineExceeded, InvalidInput, ModelError, NotFound

    url = str(server.base_url)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    with Client(url, binary=binary) as client:
        assert client.server_ready() and client.model_ready("calc")
        out = client.infer("calc", {"x": x}, request_id="c1")
        np.testing.assert_array_equal(out["y"], x * 2)
        assert out.id == "c1" and out.model_name == "calc" and out["total"].dtype == np.float32
        only = client.infer("calc", {"x": x.tolist()}, outputs=["total"])  # lists typed from metadata
        assert list(only) == ["total"]
        np.testing.assert_array_equal(only["total"], [6.0, 22.0])
        said = client.infer("echo", {"text": ["héllo", "x"]})
        assert [v.decode() if isinstance(v, bytes) else v for v in said["upper"]] == ["HÉLLO", "X"]
        assert client.infer("ladder", {"x": [-1.0]}).rungs == {"primary": "spare"}
        with pytest.raises(InvalidInput, match="unknown input 'nope'"):
            client.infer("calc", {"nope": x})
        with pytest.raises(NotFound):
            client.infer("missing", {"x": x})
        with pytest.raises(ModelError, match="x holds 500"):
            client.infer("calc", {"x": np.full((1, 4), 500, np.float32)})
        with pytest.raises(DeadlineExceeded):
            client.infer("calc", {"x": np.full((1, 4), 504, np.float32)}, timeout_s=0.2)

    async def go() -> np.ndarray:
        async with AsyncClient(url, binary=binary) as client:
            assert await client.model_ready("calc")
            outs = await asyncio.gather(*(client.infer("calc", {"x": x + i}) for i in range(4)))
            return np.stack([o["total"] for o in outs])

    np.testing.assert_array_equal(asyncio.run(go()), [x.sum(axis=1) + 4 * i for i in range(4)])


PID_YAML = """name: pid
bricks:
  pid: {python: "pid_model:pid", outputs: pid}
graph: pid
"""


@pytest.mark.parametrize("backend", ["local", "process"])
def test_backend_flag_picks_where_the_bricks_run(tmp_path, backend):
    (tmp_path / "pid_model.py").write_text("import os\n\n\ndef pid(x: float) -> int:\n    return os.getpid()\n")
    (tmp_path / "pid.yaml").write_text(PID_YAML)
    body = orjson.dumps({"inputs": [tensor("x", "FP64", [1], [1.0])]})
    with served([tmp_path / "pid.yaml"], "--backend", backend, cwd=tmp_path) as s:
        r = httpx.post(s.url + "/v2/models/pid/infer", content=body, timeout=30)
        assert r.status_code == 200, r.text
        ran_in = int(r.json()["outputs"][0]["data"][0])
        if backend == "local":
            assert ran_in == s.proc.pid
        else:  # a worker process the server spawned
            parent = open(f"/proc/{ran_in}/stat").read().rsplit(")", 1)[1].split()[1]
            assert ran_in != s.proc.pid and int(parent) == s.proc.pid

