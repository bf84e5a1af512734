"""Remote bricks: a model on a second brickwork server (v2) and a plain JSON endpoint (http)."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Annotated, TypedDict

import numpy as np
import pytest
from tests.fixtures.plain_http import plain_http_server

import brickwork as bw
from brickwork.bricks.http import HttpBrick, RemoteV2Brick
from brickwork.client import Client
from brickwork.errors import ConfigError, UpstreamError
from brickwork.server import ServerThread

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]


class Calc(TypedDict):
    y: Vec
    total: Annotated[np.ndarray, bw.Tensor("FP32", ())]


def calc(x: Vec) -> Calc:
    if (x == 500).any():
        raise ValueError("x holds 500")
    return {"y": x * 2, "total": x.sum(axis=1)}


@pytest.fixture(scope="module")
def upstream():
    with ServerThread(bw.function(calc, batch=True).compile(name="calc")) as s:
        yield s


def test_v2_brick_reads_its_signature_from_the_upstream(upstream):
    brick = RemoteV2Brick(upstream.url, model="calc")
    assert [str(s) for s in brick.signature.inputs] == ["x: FP32[?, 4]"]
    assert brick.signature.output_names == ("y", "total")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    out = brick({"x": x})
    np.testing.assert_array_equal(out["y"], x * 2)
    np.testing.assert_array_equal(out["total"], x.sum(axis=1))
    brick.close()


def test_v2_brick_in_a_pipeline_served_by_a_second_server(upstream):
    def half(y: Vec) -> Annotated[np.ndarray, bw.Tensor("FP32", (4,))]:
        return y / 2

    graph = bw.http(upstream.url, model="calc", name="remote") >> bw.function(half, batch=True, outputs="z")
    with ServerThread(graph.compile(name="front")) as front, Client(front.url) as client:
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        out = client.infer("front", {"x": x})
        np.testing.assert_array_equal(out["z"], x)
        bad = np.full((1, 4), 500, dtype=np.float32)
        with pytest.raises(UpstreamError) as err:  # upstream 500 -> 502 here, message kept
            client.infer("front", {"x": bad})
        assert "x holds 500" in str(err.value) and "HTTP 502" in str(err.value)


def test_v2_brick_upstream_error_carries_the_upstream_status(upstream):
    brick = RemoteV2Brick(upstream.url, model="calc")
    with pytest.raises(UpstreamError) as err:
        brick({"x": np.full((1, 4), 500, dtype=np.float32)})
    assert err.value.upstream_status == 500 and "x holds 500" in str(err.value)
    with pytest.raises(UpstreamError) as err:
        RemoteV2Brick(upstream.url, model="nope").load()
    assert err.value.upstream_status == 404
    brick.close()


def test_v2_brick_unreachable_is_upstream_error_without_status():
    brick = RemoteV2Brick("http://127.0.0.1:9", model="m", call_timeout_s=1.0,
                          inputs=[{"name": "x", "datatype": "FP32"}],
                          outputs=[{"name": "y", "datatype": "FP32"}])
    with pytest.raises(UpstreamError) as err:
        brick({"x": np.zeros(1, np.float32)})
    assert err.value.upstream_status is None and "cannot reach" in str(err.value)


def test_v2_brick_rebuilds_from_its_spec(upstream):
    brick = RemoteV2Brick(upstream.url, model="calc", call_timeout_s=3.0)
    spec = brick.spec()
    assert spec.kind == "v2" and spec.config["model"] == "calc"
    again = RemoteV2Brick.from_config(dict(spec.config), None, spec.name)  # type: ignore[arg-type]
    assert again.signature == brick.signature


# -- a plain JSON endpoint ------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    calls: list[dict] = []

    def do_POST(self):
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.calls.append({"path": self.path, "doc": doc, "auth": self.headers.get("Authorization")})
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/fail":
            return self._send(503, {"detail": "maintenance"})
        if self.path == "/batch":
            texts = doc["texts"]
            return self._send(200, {"scores": [float(len(t)) for t in texts]})
        text = doc["document"]["content"]
        return self._send(200, {"result": {"score": len(text) / 10, "label": text.upper()}})

    def _send(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:  # the /slow caller gave up, as intended
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def endpoint():
    with plain_http_server(_Handler) as url:
        yield url


TEXT_IN = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


def test_http_brick_maps_request_and_response_per_item(endpoint, monkeypatch):
    monkeypatch.setenv("SENTIMENT_KEY", "k1")
    brick = HttpBrick(
        endpoint + "/score", name="sentiment", inputs=TEXT_IN,
        outputs=[{"name": "score", "datatype": "FP32"}, {"name": "label", "datatype": "BYTES"}],
        request={"document": {"content": "{text}", "lang": "en"}},
        response={"score": "result.score", "label": "$.result.label"},
        headers={"Authorization": "Bearer ${SENTIMENT_KEY}"})
    out = brick({"text": np.array(["hello", b"hi"], dtype=object)})
    np.testing.assert_allclose(out["score"], [0.5, 0.2])
    assert out["score"].dtype == np.float32 and out["label"].tolist() == ["HELLO", "HI"]
    last = _Handler.calls[-1]
    assert last["doc"] == {"document": {"content": "hi", "lang": "en"}} and last["auth"] == "Bearer k1"
    brick.close()


def test_http_brick_batch_mode_sends_lists(endpoint):
    node = bw.http(endpoint + "/batch", name="lengths", inputs=TEXT_IN, batch=True,
                   outputs=[{"name": "score", "datatype": "FP64"}],
                   request={"texts": "{text}"}, response={"score": "scores"})
    pipeline = node.compile(name="lengths")
    try:
        out = pipeline.infer({"text": np.array(["a", "abc"], dtype=object)})
        np.testing.assert_array_equal(out["score"], [1.0, 3.0])
    finally:
        pipeline.close()


def test_http_brick_errors_are_upstream_errors(endpoint):
    kw = {"inputs": TEXT_IN, "outputs": [{"name": "score", "datatype": "FP32"}],
          "request": {"document": {"content": "{text}"}}, "response": {"score": "result.score"}}
    failing = HttpBrick(endpoint + "/fail", name="f", **kw)
    with pytest.raises(UpstreamError) as err:
        failing({"text": np.array(["x"], dtype=object)})
    assert err.value.upstream_status == 503 and "maintenance" in str(err.value)
    slow = HttpBrick(endpoint + "/slow", name="s", call_timeout_s=0.2, **kw)
    with pytest.raises(UpstreamError) as err:
        slow({"text": np.array(["x"], dtype=object)})
    assert err.value.upstream_status is None and "no answer within 0.2 s" in str(err.value)
    wrong = HttpBrick(endpoint + "/score", name="w", inputs=TEXT_IN,
                      outputs=[{"name": "score", "datatype": "FP32"}],
                      request={"document": {"content": "{text}"}}, response={"score": "result.nope"})
    with pytest.raises(UpstreamError, match="no 'result.nope'"):
        wrong({"text": np.array(["x"], dtype=object)})


def test_http_brick_config_is_checked_up_front():
    with pytest.raises(ConfigError, match="not inputs"):
        HttpBrick("http://x", inputs=TEXT_IN, outputs=[{"name": "s", "datatype": "FP32"}],
                  request={"a": "{nope}"})
    with pytest.raises(ConfigError, match="http://"):
        HttpBrick("ftp://x", inputs=TEXT_IN, outputs=[{"name": "s", "datatype": "FP32"}])
    with pytest.raises(ConfigError, match="unknown option"):
        HttpBrick.from_config({"http": "http://x", "inputs": TEXT_IN, "outputs": TEXT_IN, "colour": 1},
                              None, "b")  # type: ignore[arg-type]
    assert isinstance(HttpBrick.from_config({"http": "http://x", "model": "m", "inputs": TEXT_IN,
                                             "outputs": TEXT_IN}, None, "b"),  # type: ignore[arg-type]
                      RemoteV2Brick)


def test_v2_brick_with_its_upstream_down_says_that_declaring_ports_removes_the_need(tmp_path):
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text(f"name: p\nbricks:\n  remote: {{v2: '{url}', model: calc}}\ngraph: remote\n")
    from brickwork.graph import load_graph

    with pytest.raises(bw.BrickworkError) as info:
        load_graph(yaml_path).compile()
    msg = str(info.value)
    assert "cannot read its metadata" in msg and "declare inputs and outputs on the brick" in msg
    with pytest.raises(bw.BrickworkError, match="declare outputs on the brick"):
        RemoteV2Brick(url, model="calc", inputs=[bw.TensorSpec("x", "FP32", (-1, 4))], call_timeout_s=2.0).load()
    declared = RemoteV2Brick(url, model="calc", inputs=[bw.TensorSpec("x", "FP32", (-1, 4))],
                             outputs=[bw.TensorSpec("y", "FP32", (-1, 4))], call_timeout_s=2.0)
    with bw.brick(declared).compile() as pipeline:  # starts although the upstream is down
        with pytest.raises(UpstreamError):
            pipeline.infer({"x": np.zeros((1, 4), dtype=np.float32)})
