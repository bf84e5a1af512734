"""One client core: Client and AsyncClient drive the same operations (so they send the same
bytes and raise the same errors), and the calling-side envelopes (protocol.encode_request /
decode_response) agree with the serving side (decode_request / encode_response)."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from brickwork.client import AsyncClient, Client
from brickwork.errors import DeadlineExceeded, NotFound, Overloaded
from brickwork.protocol import (
    HEADER_LENGTH,
    InferResponse,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from brickwork.spec import TensorSpec

META = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]},
                                {"name": "t", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]}
SPECS_IN = {"x": TensorSpec("x", "FP32", (-1, 2)), "t": TensorSpec("t", "BYTES", (-1,))}
SPECS_OUT = {"y": TensorSpec("y", "FP32", (-1, 2))}


def server(seen: list[tuple[str, str, bytes, dict[str, str]]]) -> httpx.MockTransport:
    """A v2 model built from the serving-side envelope functions: y = 2x."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append((request.method, request.url.path, body,
                     {k: v for k, v in request.headers.items() if k in ("content-type", HEADER_LENGTH.lower())}))
        if request.url.path == "/v2/models/m":
            return httpx.Response(200, json=META)
        if request.url.path == "/v2/models/busy/infer":
            return httpx.Response(503, json={"error": "queue full"}, headers={"retry-after": "3"})
        if request.url.path != "/v2/models/m/infer":
            return httpx.Response(404, json={"error": "unknown model"})
        hl = request.headers.get(HEADER_LENGTH)
        req = decode_request(body, int(hl) if hl else None, SPECS_IN, SPECS_OUT, "m")
        headers, out = encode_response("m", req, {"y": req.inputs["x"] * 2}, ("y",), {"main": "spare"})
        return httpx.Response(200, content=out, headers=[(k.decode(), v.decode()) for k, v in headers])

    return httpx.MockTransport(handle)


def sync_client(seen: list) -> Client:
    c = Client("http://v2.test")
    c._http = httpx.Client(base_url=c.url, transport=server(seen))
    return c


def async_client(seen: list) -> AsyncClient:
    c = AsyncClient("http://v2.test")
    c._http = httpx.AsyncClient(base_url=c.url, transport=server(seen))
    return c


@pytest.mark.parametrize("binary", [True, False])
def test_sync_and_async_send_the_same_requests_and_read_the_same_answers(binary: bool) -> None:
    inputs = {"x": [[1.0, 2.0], [3.0, 4.0]], "t": ["a", "b"]}  # lists: typed from the metadata
    seen_sync: list = []
    seen_async: list = []
    with sync_client(seen_sync) as c:
        a = c.infer("m", inputs, binary=binary, request_id="r1", timeout_s=2.0)

    async def run() -> InferResponse:
        async with async_client(seen_async) as c:
            return await c.infer("m", inputs, binary=binary, request_id="r1", timeout_s=2.0)

    b = asyncio.run(run())
    assert seen_sync == seen_async
    assert [s[1] for s in seen_sync] == ["/v2/models/m", "/v2/models/m/infer"]
    for out in (a, b):
        assert out["y"].dtype == np.float32 and out["y"].tolist() == [[2.0, 4.0], [6.0, 8.0]]
        assert out.id == "r1" and out.rungs == {"main": "spare"}


def test_sync_and_async_raise_the_same_errors() -> None:
    seen: list = []
    with sync_client(seen) as c:
        with pytest.raises(Overloaded) as sync_err:
            c.infer("busy", {"x": np.zeros((1, 2), np.float32)})
        with pytest.raises(NotFound):
            c.model_metadata("nope")

    async def run() -> Overloaded:
        async with async_client(seen) as c:
            with pytest.raises(NotFound):
                await c.model_metadata("nope")
            with pytest.raises(Overloaded) as err:
                await c.infer("busy", {"x": np.zeros((1, 2), np.float32)})
            return err.value

    async_err = asyncio.run(run())
    assert str(sync_err.value) == str(async_err) and "queue full" in str(async_err)
    assert sync_err.value.retry_after_s == async_err.retry_after_s == 3.0


def test_a_transport_timeout_is_deadline_exceeded_on_both() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    c = Client("http://v2.test")
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(slow))
    with pytest.raises(DeadlineExceeded, match="no answer within 30.0 s"):
        c.server_ready()
    a = AsyncClient("http://v2.test")
    a._http = httpx.AsyncClient(base_url=a.url, transport=httpx.MockTransport(slow))
    with pytest.raises(DeadlineExceeded, match="no answer within 30.0 s"):
        asyncio.run(a.server_ready())


@pytest.mark.parametrize("binary", [True, False])
def test_calling_and_serving_envelopes_agree(binary: bool) -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    t = np.array(["é", "", "zz"], dtype=object)
    headers, body = encode_request({"x": x, "t": t}, outputs=["y"], binary=binary,
                                   request_id="q", timeout_s=1.5)
    hl = headers.get(HEADER_LENGTH)
    req = decode_request(body, int(hl) if hl else None, SPECS_IN, SPECS_OUT, "m")
    assert req.id == "q" and req.timeout_s == 1.5 and req.outputs == [("y", binary)]
    assert req.inputs["x"].tolist() == x.tolist()
    assert [v.decode() if isinstance(v, bytes) else v for v in req.inputs["t"]] == ["é", "", "zz"]
    out_headers, out = encode_response("m", req, {"y": x + 1}, ("y",), {})
    answer = decode_response(200, out, {k.decode(): v.decode() for k, v in out_headers}, "u")
    assert answer["y"].tolist() == (x + 1).tolist() and answer.model_name == "m"
