"""The lean HTTP/1.1 layer on a real socket: keep-alive, pipelining, chunked bodies,
Expect: 100-continue, HTTP/1.0, HEAD, malformed requests, the body limit — and the ASGI form
of the same app."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Annotated

import numpy as np
import orjson
import pytest

import brickwork as bw
from brickwork.server import App, ServerThread


def double(x: float) -> float:
    return 2 * x


BODY = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [2.0]}]})


@pytest.fixture(scope="module")
def server():
    with ServerThread(bw.function(double, outputs="y").compile(name="double"), max_body_bytes=2000) as s:
        yield s


def talk(server, raw: bytes, *, until: int = 1, timeout_s: float = 5.0) -> list[bytes]:
    """Send raw bytes, read until ``until`` complete responses (or the peer closes)."""
    with socket.create_connection((server.host, server.port), timeout=timeout_s) as sock:
        sock.sendall(raw)
        data = b""
        responses: list[bytes] = []
        while len(responses) < until:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            while b"\r\n\r\n" in data:
                head, rest = data.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(rest) < length:
                    break
                responses.append(head + b"\r\n\r\n" + rest[:length])
                data = rest[length:]
        return responses


def post(body: bytes = BODY, extra: bytes = b"") -> bytes:
    return (b"POST /v2/models/double/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_pipelined_requests_are_answered_in_order(server):
    bodies = [orjson.dumps({"id": str(i), "inputs": [{"name": "x", "datatype": "FP64", "shape": [1],
                                                     "data": [float(i)]}]}) for i in range(5)]
    out = talk(server, b"".join(post(b) for b in bodies), until=5)
    assert [orjson.loads(r.split(b"\r\n\r\n", 1)[1])["id"] for r in out] == ["0", "1", "2", "3", "4"]


def test_chunked_request_body(server):
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    raw = (b"POST /v2/models/double/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + chunked)
    (r,) = talk(server, raw)
    assert r.startswith(b"HTTP/1.1 200") and b'"data":[4.0]' in r


def test_expect_100_continue(server):
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        head = post().split(b"\r\n\r\n")[0] + b"\r\nExpect: 100-continue\r\n\r\n"
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(BODY)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_http10_closes_and_keep_alive_stays_open(server):
    raw = b"GET /v2/health/live HTTP/1.0\r\n\r\n"
    (r,) = talk(server, raw)
    assert r.startswith(b"HTTP/1.1 200") and b"connection: close" in r
    two = talk(server, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n" * 2, until=2)
    assert len(two) == 2 and b"connection: close" not in two[0]


def test_head_has_no_body(server):
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"HEAD /v2/models/double HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            data += sock.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert b"content-length: " in head and rest.startswith(b"HTTP/1.1 200")  # no body between


def test_malformed_http_is_400(server):
    (r,) = talk(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 400") and b"malformed HTTP" in r


def test_body_limit_by_content_length_and_by_counting(server):
    big = b"x" * 5000
    (r,) = talk(server, post(big))
    assert r.startswith(b"HTTP/1.1 413") and b"connection: close" in r
    chunked = b"".join(b"%x\r\n%s\r\n" % (1000, b"y" * 1000) for _ in range(5)) + b"0\r\n\r\n"
    raw = (b"POST /v2/models/double/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + chunked)
    (r,) = talk(server, raw)
    assert r.startswith(b"HTTP/1.1 413")
    (r,) = talk(server, post())  # and it keeps serving
    assert r.startswith(b"HTTP/1.1 200")


def test_percent_encoded_paths(server):
    (r,) = talk(server, b"GET /v2/models/dou%62le HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 200") and b'"name":"double"' in r


def test_the_same_app_as_asgi():
    app = App([bw.function(double, outputs="y").compile(name="double")])
    sent: list[dict] = []

    async def go():
        await app.startup()
        messages = iter([{"type": "http.request", "body": BODY[:10], "more_body": True},
                         {"type": "http.request", "body": BODY[10:], "more_body": False}])

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v2/models/double/infer", "headers": []}
        await app(scope, receive, send)
        await app.shutdown()

    asyncio.run(go())
    assert sent[0]["status"] == 200
    assert orjson.loads(sent[1]["body"])["outputs"][0]["data"] == [4.0]


def nap(x: float) -> float:
    """Takes 6 s on a real input (the warm-up's zero is instant)."""
    if x:
        import time

        time.sleep(6.0)
    return x


def test_requests_still_running_when_the_drain_times_out_are_cancelled_not_left_pending():
    """A drain that times out cancels what is still being answered: a request whose client is
    waiting and one whose client hung up mid-answer. Nothing is left pending on a closed loop."""
    import time

    s = ServerThread(bw.function(nap, outputs="y", blocking=True).compile(name="nap"),
                     drain_timeout_s=0.3).start()
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]})
    raw = post(body).replace(b"/v2/models/double/", b"/v2/models/nap/")
    waiting = socket.create_connection((s.host, s.port), timeout=10)
    waiting.sendall(raw)
    with socket.create_connection((s.host, s.port), timeout=10) as gone:
        gone.sendall(raw)
        srv = s._server
        deadline = time.monotonic() + 5
        while sum(c.task is not None for c in list(srv.connections)) < 2:
            assert time.monotonic() < deadline, "the requests never reached the server"
            time.sleep(0.01)
        time.sleep(0.1)  # both are in the brick now
        # hang up with a reset: a plain close (FIN) is a half-close, whose request is answered
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    deadline = time.monotonic() + 5
    while not srv.orphans:  # the hung-up client's request is still being answered
        assert time.monotonic() < deadline, "the request of the client that left was not tracked"
        time.sleep(0.01)
    tasks = [c.task for c in list(srv.connections)] + list(srv.orphans)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 4.0  # the drain's 0.3 s, not the brick's 6 s
    assert len(tasks) == 2 and all(t is not None and t.cancelled() for t in tasks)
    assert not srv.orphans
    assert waiting.recv(65536) == b""  # aborted, never answered
    waiting.close()


Vec4 = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]


def vdouble(x: Vec4) -> Vec4:
    return x * 2


@pytest.mark.parametrize("binary, compressed", [(True, False), (False, False), (True, True)])
def test_large_requests_and_responses_are_coded_off_the_loop_and_still_right(binary, compressed):
    """Bodies of 1 MiB and more are decoded, and large responses encoded, on a helper thread."""
    import gzip

    from brickwork.client import Client

    pipe = bw.function(vdouble, outputs="y", batch=True).compile(name="vd")
    x = np.arange(400_000, dtype=np.float32).reshape(-1, 4)  # 1.6 MB binary, ~4 MB JSON
    with ServerThread(pipe) as s:
        if not compressed:
            with Client(s.url) as client:
                out = client.infer("vd", {"x": x}, binary=binary)
            assert np.array_equal(out["y"], x * 2)
        else:
            body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                             "data": x.reshape(-1)}]}, option=orjson.OPT_SERIALIZE_NUMPY)
            import httpx

            r = httpx.post(s.url + "/v2/models/vd/infer", content=gzip.compress(body),
                           headers={"Content-Encoding": "gzip"}, timeout=60)
            assert r.status_code == 200 and r.json()["outputs"][0]["data"][:3] == [0.0, 2.0, 4.0]
        assert s.app._decoders is not None  # the helper threads did the work
