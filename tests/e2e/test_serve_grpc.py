"""NVIDIA's own client, tritonclient.grpc, unchanged against `brickwork serve --grpc-port`."""

from __future__ import annotations

import queue

import numpy as np
import pytest
from tests.e2e.serve_helpers import served, write_models

grpcclient = pytest.importorskip("tritonclient.grpc")
pytest.importorskip("brickwork.server._grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

KEY = "s3cret"
AUTH = {"authorization": f"Bearer {KEY}"}


def grpc_url(output: list[str]) -> str:
    (line,) = [ln for ln in output if "gRPC on " in ln]
    return line.rsplit(" on ", 1)[1].strip()


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triton_grpc")
    with served(write_models(folder), "--grpc-port", "0", "--api-key", KEY, cwd=folder) as s:
        client = grpcclient.InferenceServerClient(url=grpc_url(s.output))
        yield client
        client.close()


def fp32(name, x):
    inp = grpcclient.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def code(exc_info):
    return exc_info.value.status()


def test_health_needs_no_key_and_the_rest_does(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    with pytest.raises(InferenceServerException, match="API key") as e:
        triton.is_model_ready("calc")
    assert code(e) == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException, match="API key"):
        triton.infer("calc", [fp32("x", np.zeros((1, 4), np.float32))],
                     headers={"authorization": "Bearer wrong"})
    assert triton.is_model_ready("calc", headers=AUTH)
    assert triton.is_model_ready("echo", headers={"x-api-key": KEY})


def test_metadata(triton):
    server = triton.get_server_metadata(headers=AUTH, as_json=True)
    assert server["name"] == "brickwork" and "binary_tensor_data" in server["extensions"]
    meta = triton.get_model_metadata("calc", headers=AUTH, as_json=True)
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert [o["name"] for o in meta["outputs"]] == ["y", "total"]
    with pytest.raises(InferenceServerException, match="unknown model 'missing'") as e:
        triton.get_model_metadata("missing", headers=AUTH)
    assert code(e) == "StatusCode.NOT_FOUND"


def test_binary_infer_all_outputs(triton):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    res = triton.infer("calc", [fp32("x", x)], headers=AUTH, request_id="42", model_version="1")
    np.testing.assert_array_equal(res.as_numpy("y"), x * 2)
    np.testing.assert_array_equal(res.as_numpy("total"), x.sum(axis=1))
    assert res.get_response().id == "42"


def test_requested_outputs_only(triton):
    x = np.ones((2, 4), dtype=np.float32)
    res = triton.infer("calc", [fp32("x", x)], headers=AUTH,
                       outputs=[grpcclient.InferRequestedOutput("total")])
    assert [o.name for o in res.get_response().outputs] == ["total"]
    assert res.as_numpy("y") is None
    np.testing.assert_array_equal(res.as_numpy("total"), [4.0, 4.0])


def test_bytes_tensors(triton):
    text = np.array([b"hello", "wörld".encode()], dtype=object)
    inp = grpcclient.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(text)
    res = triton.infer("echo", [inp], headers=AUTH)
    assert [u.decode() for u in res.as_numpy("upper").tolist()] == ["HELLO", "WÖRLD"]
    np.testing.assert_array_equal(res.as_numpy("n"), [5, 5])


@pytest.mark.parametrize(("x", "status", "match"), [
    (np.full((1, 4), 500, np.float32), "INTERNAL", "x holds 500"),
    (np.full((1, 4), 503, np.float32), "UNAVAILABLE", "calc is busy"),
    (np.zeros((1, 5), np.float32), "INVALID_ARGUMENT", "'x'"),
])
def test_errors_map_to_status_codes(triton, x, status, match):
    with pytest.raises(InferenceServerException, match=match) as e:
        triton.infer("calc", [fp32("x", x)], headers=AUTH)
    assert code(e) == f"StatusCode.{status}"


def test_request_errors(triton):
    with pytest.raises(InferenceServerException, match="unknown input 'nope'") as e:
        triton.infer("calc", [fp32("nope", np.zeros((1, 4), np.float32))], headers=AUTH)
    assert code(e) == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="no version '2'") as e:
        triton.infer("calc", [fp32("x", np.zeros((1, 4), np.float32))], headers=AUTH, model_version="2")
    assert code(e) == "StatusCode.NOT_FOUND"
    bad = grpcclient.InferInput("x", [2, 4], "FP32")
    bad.set_data_from_numpy(np.zeros((2, 4), np.float32))
    bad._input.shape[:] = [3, 4]  # the shape claims more than the bytes that came
    with pytest.raises(InferenceServerException, match="needs 48 bytes of FP32, got 32") as e:
        triton.infer("calc", [bad], headers=AUTH)
    assert code(e) == "StatusCode.INVALID_ARGUMENT"


@pytest.mark.parametrize("how", ["parameter", "grpc deadline"])
def test_deadlines(triton, how):
    x = np.full((1, 4), 504, dtype=np.float32)  # the model sleeps 1 s on 504
    kw = {"timeout": 100_000} if how == "parameter" else {"client_timeout": 0.2}
    with pytest.raises(InferenceServerException) as e:
        triton.infer("calc", [fp32("x", x)], headers=AUTH, **kw)
    assert code(e) == "StatusCode.DEADLINE_EXCEEDED"


def test_stream_infer_answers_each_request_and_errors_in_band(triton):
    got: queue.Queue = queue.Queue()
    triton.start_stream(callback=lambda result, error: got.put((result, error)), headers=AUTH)
    try:
        for i in range(4):
            triton.async_stream_infer("calc", [fp32("x", np.full((1, 4), i, np.float32))], request_id=str(i))
        triton.async_stream_infer("calc", [fp32("x", np.full((1, 4), 500, np.float32))], request_id="bad")
        answers, errors = {}, []
        for _ in range(5):
            result, error = got.get(timeout=30)
            if error is not None:
                errors.append(str(error))
            else:
                answers[result.get_response().id] = result.as_numpy("total").tolist()
    finally:
        triton.stop_stream()
    assert answers == {str(i): [4.0 * i] for i in range(4)}
    assert len(errors) == 1 and "x holds 500" in errors[0]


def test_message_size_is_bounded(tmp_path):
    with served(write_models(tmp_path), "--grpc-port", "0", "--max-body-bytes", "4096",
                cwd=tmp_path) as s:
        client = grpcclient.InferenceServerClient(url=grpc_url(s.output))
        try:
            x = np.zeros((512, 4), np.float32)  # 8 KiB
            with pytest.raises(InferenceServerException) as e:
                client.infer("calc", [fp32("x", x)])
            assert code(e) == "StatusCode.RESOURCE_EXHAUSTED"
            small = client.infer("calc", [fp32("x", np.ones((2, 4), np.float32))])
            np.testing.assert_array_equal(small.as_numpy("total"), [4.0, 4.0])
        finally:
            client.close()


def test_workers_share_the_grpc_port(tmp_path):
    """--workers 2: both processes listen on the one gRPC port (SO_REUSEPORT); new channels
    spread over them, and every one is answered."""
    with served(write_models(tmp_path), "--grpc-port", "0", "--workers", "2", cwd=tmp_path) as s:
        url = grpc_url(s.output)
        for _ in range(8):
            client = grpcclient.InferenceServerClient(url=url)
            try:
                assert client.is_server_ready()
                res = client.infer("calc", [fp32("x", np.ones((1, 4), np.float32))])
                np.testing.assert_array_equal(res.as_numpy("total"), [4.0])
            finally:
                client.close()
