"""The gRPC front in a ServerThread (in-process, beside tritonclient's own `inference` classes):
fallback rungs in the response, typed contents from a raw gRPC stub, readiness and drain."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import brickwork as bw
from brickwork.server import ServerThread

grpc = pytest.importorskip("grpc")
grpcclient = pytest.importorskip("tritonclient.grpc")
pytest.importorskip("brickwork.server._grpc")
from brickwork.protocol.grpc import messages as pb  # noqa: E402


def double(x: float) -> float:
    return 2 * x


def busy(x: float) -> float:
    raise bw.Overloaded("primary is down")


def spare(x: float) -> float:
    return -x


def slow(x: float) -> float:
    time.sleep(1.0)
    return x


@pytest.fixture(scope="module")
def server():
    main = bw.function(double, outputs="y").compile(name="double")
    ladder = bw.function(busy, outputs="y").fallback(bw.function(spare, outputs="y"), name="ladder")
    with ServerThread([main, ladder.compile(name="degraded")], grpc_port=0) as s:
        yield s


def test_tritonclient_in_the_same_process(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        x = grpcclient.InferInput("x", [3], "FP64")
        x.set_data_from_numpy(np.array([1.0, 2.0, 3.0]))
        res = client.infer("double", [x])
        np.testing.assert_array_equal(res.as_numpy("y"), [2.0, 4.0, 6.0])
        res = client.infer("degraded", [x])
        np.testing.assert_array_equal(res.as_numpy("y"), [-1.0, -2.0, -3.0])
        assert res.get_response().parameters["rung.ladder"].string_param == "spare"
    finally:
        client.close()


def test_typed_contents_through_a_plain_stub(server):
    with grpc.insecure_channel(server.grpc_url) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                    request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        req = pb.ModelInferRequest(model_name="double", id="typed")
        t = req.inputs.add(name="x", datatype="FP64", shape=[2])
        t.contents.fp64_contents.extend([0.5, -4.0])
        res = infer(req)
        assert res.id == "typed" and res.model_version == "1"
        assert [o.name for o in res.outputs] == ["y"] and list(res.outputs[0].shape) == [2]
        assert np.frombuffer(res.raw_output_contents[0], "<f8").tolist() == [1.0, -8.0]
        t.contents.fp64_contents.append(1.0)  # three values for shape [2]
        with pytest.raises(grpc.RpcError) as e:
            infer(req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "shape [2] has 2 elements, contents.fp64_contents has 3" in e.value.details()


def test_grpc_requests_are_counted_in_metrics_like_http_ones(server):
    import httpx

    def count(text: str, line: str) -> float:
        found = [ln for ln in text.splitlines() if ln.startswith(line + " ")]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

    ok = 'brickwork_requests_total{model="double",code="200"}'
    bad = 'brickwork_request_errors_total{model="double",kind="InvalidInput"}'
    before = httpx.get(server.url + "/metrics").text
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        x = grpcclient.InferInput("x", [1], "FP64")
        x.set_data_from_numpy(np.array([1.0]))
        for _ in range(3):
            client.infer("double", [x])
        wrong = grpcclient.InferInput("nope", [1], "FP64")
        wrong.set_data_from_numpy(np.array([1.0]))
        with pytest.raises(Exception, match="unknown input 'nope'"):
            client.infer("double", [wrong])
    finally:
        client.close()
    after = httpx.get(server.url + "/metrics").text
    assert count(after, ok) - count(before, ok) == 3
    assert count(after, bad) - count(before, bad) == 1


def test_drain_lets_the_call_in_flight_finish_and_refuses_new_ones():
    pipe = bw.function(slow, outputs="y", blocking=True).compile(name="slow")  # off the loop
    server = ServerThread(pipe, grpc_port=0).start()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    got: dict[str, object] = {}

    def call() -> None:
        x = grpcclient.InferInput("x", [1], "FP64")
        x.set_data_from_numpy(np.array([7.0]))
        try:
            got["y"] = client.infer("slow", [x]).as_numpy("y").tolist()
        except Exception as exc:
            got["error"] = exc

    t = threading.Thread(target=call)
    try:
        assert client.is_server_ready()
        t.start()
        time.sleep(0.4)  # the call is in the model now
        server.stop()
        t.join(10)
        assert got == {"y": [7.0]}
        with pytest.raises(Exception):  # noqa: B017 - refused or unreachable, both fine
            client.is_server_live(client_timeout=2.0)
    finally:
        client.close()
        server.stop()
