"""NVIDIA's own client, tritonclient[http], unchanged against `brickwork serve`."""

from __future__ import annotations

import numpy as np
import pytest
from tests.e2e.serve_helpers import FRONTS, served, write_models

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module", params=FRONTS)
def triton(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("triton")
    with served(write_models(folder), "--http", request.param, cwd=folder) as s:
        client = httpclient.InferenceServerClient(url=s.url.removeprefix("http://"))
        yield client
        client.close()


def test_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("calc") and triton.is_model_ready("echo")
    assert triton.get_server_metadata()["name"] == "brickwork"
    meta = triton.get_model_metadata("calc")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert {o["name"] for o in meta["outputs"]} == {"y", "total"}
    assert triton.get_model_config("calc")["name"] == "calc"
    assert {m["name"] for m in triton.get_model_repository_index()} == {"calc", "echo"}


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_infer_json_and_binary(triton, binary_in, binary_out):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    outs = [httpclient.InferRequestedOutput("y", binary_data=binary_out),
            httpclient.InferRequestedOutput("total", binary_data=binary_out)]
    res = triton.infer("calc", [inp], outputs=outs, request_id="42")
    np.testing.assert_array_equal(res.as_numpy("y"), x * 2)
    np.testing.assert_array_equal(res.as_numpy("total"), x.sum(axis=1))
    assert res.get_response()["id"] == "42"


def test_requested_outputs_only(triton):
    x = np.ones((2, 4), dtype=np.float32)
    inp = httpclient.InferInput("x", [2, 4], "FP32")
    inp.set_data_from_numpy(x)
    res = triton.infer("calc", [inp], outputs=[httpclient.InferRequestedOutput("total")],
                       model_version="1")  # POST /v2/models/calc/versions/1/infer
    assert [o["name"] for o in res.get_response()["outputs"]] == ["total"]
    assert res.as_numpy("y") is None
    np.testing.assert_array_equal(res.as_numpy("total"), [4.0, 4.0])


@pytest.mark.parametrize("binary", [False, True])
def test_bytes_tensors(triton, binary):
    text = np.array(["hello", "wörld"], dtype=object)
    inp = httpclient.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(text, binary_data=binary)
    outs = [httpclient.InferRequestedOutput("upper", binary_data=binary),
            httpclient.InferRequestedOutput("n", binary_data=binary)]
    res = triton.infer("echo", [inp], outputs=outs)
    upper = [u.decode() if isinstance(u, bytes) else u for u in res.as_numpy("upper").tolist()]
    assert upper == ["HELLO", "WÖRLD"]
    np.testing.assert_array_equal(res.as_numpy("n"), [5, 5])


def test_error_reaches_the_client(triton):
    inp = httpclient.InferInput("nope", [1, 4], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 4), np.float32))
    with pytest.raises(InferenceServerException, match="unknown input 'nope'"):
        triton.infer("calc", [inp])
    with pytest.raises(InferenceServerException, match="unknown model"):
        triton.get_model_metadata("missing")
    with pytest.raises(InferenceServerException, match="no version '2'"):
        triton.infer("calc", [httpclient.InferInput("x", [1, 4], "FP32").set_data_from_numpy(
            np.zeros((1, 4), np.float32))], model_version="2")


def test_request_timeout_from_tritonclient_becomes_the_deadline(triton):
    x = np.full((1, 4), 504, dtype=np.float32)  # the model sleeps 1 s on 504
    inp = httpclient.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="took longer|deadline"):
        triton.infer("calc", [inp], timeout=100_000)  # microseconds, as Triton's protocol says
