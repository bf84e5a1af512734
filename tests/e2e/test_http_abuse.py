"""What a hostile (or just broken) HTTP client can do to `brickwork serve`, on both HTTP fronts
(`--http native` and `--http uvicorn`): every case answered with the right status, in order,
promptly, and the server still healthy afterwards. Raw sockets on loopback; the server is a
subprocess stopped by PID. Cases uvicorn does differently are skipped with the reason."""

from __future__ import annotations

import gzip
import os
import socket
import time

import orjson
import pytest
from tests.e2e import raw_http as rh
from tests.e2e.serve_helpers import FRONTS, served, write_models

pytestmark = pytest.mark.timeout(120)

KEY = "s3cret-key"
AUTH = f"Authorization: Bearer {KEY}"
LIMITS = ("--max-body-bytes", "65536", "--max-response-bytes", "8192", "--header-timeout-s", "1",
          "--body-timeout-s", "2", "--max-url-bytes", "2048", "--max-header-bytes", "8192",
          "--max-headers", "40", "--write-buffer-bytes", "65536")


@pytest.fixture(scope="module", params=FRONTS)
def server(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("abuse")
    files = write_models(folder)
    key_file = folder / "key"
    key_file.write_text(KEY + "\n")
    with served(files, "--http", request.param, "--api-key-file", str(key_file), *LIMITS, cwd=folder) as s:
        s.front = request.param  # type: ignore[attr-defined]
        yield s


def only_native(server, why: str) -> None:
    if server.front != "native":
        pytest.skip(f"uvicorn: {why}")


def calc(rows: int = 1, **extra) -> bytes:
    return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4],
                                     "data": [1.0] * (4 * rows)}], **extra})


def infer(body: bytes, *headers: str) -> bytes:
    return rh.request("POST", "/v2/models/calc/infer", body, AUTH, *headers)


def healthy(server) -> None:
    out = rh.exchange(server.port, infer(calc()), until=1)
    assert [r.status for r in out] == [200]


# -- item 4: type confusion ------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("datatype", ["FP32"]), ("datatype", {"a": 1}),
                                          ("shape", [0, 2**63]), ("parameters", [1])])
def test_type_confusion_is_a_400_naming_the_field(server, field, value):
    item = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4], field: value}
    body = orjson.dumps({"inputs": [item]}) if field != "shape" else \
        orjson.dumps({"inputs": [{**item, "shape": [0, 1], "data": []}]}).replace(b"[0,1]", b"[0,%d]" % 2**63)
    [r] = rh.exchange(server.port, infer(body), until=1)
    assert r.status == 400 and field in orjson.loads(r.body)["error"], r


# -- item 8: decompression amplification ----------------------------------------------------
def test_two_content_codings_are_refused(server):
    inner = gzip.compress(gzip.compress(b" " * 1_000_000))
    for codings in (("Content-Encoding: gzip", "Content-Encoding: gzip"), ("Content-Encoding: gzip, gzip",)):
        [r] = rh.exchange(server.port, infer(inner, *codings), until=1)
        assert r.status == 400 and "at most one Content-Encoding" in r.body.decode(), r
    healthy(server)


def test_a_gzip_body_over_the_limit_once_decoded_is_413(server):
    bomb = gzip.compress(b" " * 10_000_000)  # ~10 KB that decodes to 10 MB
    [r] = rh.exchange(server.port, infer(bomb, "Content-Encoding: gzip"), until=1)
    assert r.status == 413, r
    ok = gzip.compress(calc())
    [r] = rh.exchange(server.port, infer(ok, "Content-Encoding: gzip"), until=1)
    assert r.status == 200, r


# -- item 9: response amplification ---------------------------------------------------------
def test_a_duplicate_requested_output_is_400_and_the_response_size_capped(server):
    body = calc(outputs=[{"name": "y"}] * 50)
    [r] = rh.exchange(server.port, infer(body), until=1)
    assert r.status == 400 and "requested twice" in r.body.decode()
    [r] = rh.exchange(server.port, infer(calc(rows=600)), until=1)  # ~20 KB of JSON out
    assert r.status == 413 and "max-response-bytes" in r.body.decode(), r
    binary = calc(rows=600, parameters={"binary_data_output": True})  # refused before encoding
    [r] = rh.exchange(server.port, infer(binary), until=1)
    assert r.status == 413 and "max-response-bytes" in r.body.decode(), r
    healthy(server)


# -- item 10: per-connection memory and time --------------------------------------------------
def test_too_many_or_too_large_headers_are_431(server):
    only_native(server, "h11 answers an over-long header block with 400, and counts no header lines")
    many = [f"X-H{i}: v" for i in range(60)]
    [r] = rh.exchange(server.port, infer(calc(), *many), until=1)
    assert r.status == 431, r
    [r] = rh.exchange(server.port, infer(calc(), "X-Big: " + "a" * 20_000), until=1)
    assert r.status == 431, r
    healthy(server)


def test_a_long_url_is_414(server):
    only_native(server, "uvicorn has no request-target limit")
    [r] = rh.exchange(server.port, rh.request("GET", "/v2/" + "a" * 5000), until=1)
    assert r.status == 414, r


def test_trailers_are_bounded_and_never_become_headers(server):
    only_native(server, "h11 bounds trailers with its own buffer limit (400)")
    body = calc()
    chunked = (b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(body) + body + b"\r\n0\r\n" + f"{AUTH}\r\n".encode() + b"\r\n")
    [r] = rh.exchange(server.port, chunked, until=1)
    assert r.status == 401, r  # a key in a trailer does not count
    big = b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
    chunked = (b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               + f"{AUTH}\r\n\r\n".encode() + b"%x\r\n" % len(body) + body + b"\r\n0\r\n" + big + b"\r\n")
    [r] = rh.exchange(server.port, chunked, until=1)
    assert r.status == 431, r


def test_headers_trickled_too_slowly_are_408(server):
    only_native(server, "uvicorn has no header read deadline")
    with rh.connect(server.port) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /v2/models/calc/infer HTTP/1.1\r\n")
        for _ in range(8):  # one header line every 0.5 s: never done within 1 s
            time.sleep(0.5)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        out = rh.parse(rh.read_all(sock, 5))
        assert [r.status for r in out] == [408] and time.monotonic() - t0 < 8


def test_a_body_trickled_one_byte_at_a_time_is_cut_with_408(server):
    only_native(server, "uvicorn has no body read deadline")
    with rh.connect(server.port) as sock:
        t0 = time.monotonic()
        sock.sendall(infer(b"", ) .replace(b"Content-Length: 0", b"Content-Length: 1000"))
        for _ in range(10):
            time.sleep(0.5)
            try:
                sock.sendall(b"{")
            except OSError:
                break
        out = rh.parse(rh.read_all(sock, 5))
        assert [r.status for r in out] == [408] and time.monotonic() - t0 < 10


def test_the_api_key_is_checked_on_the_headers_before_any_body(server):
    with rh.connect(server.port) as sock:
        sock.sendall(rh.request("POST", "/v2/models/calc/infer", b"", "Expect: 100-continue",
                                length=60_000))  # no key; the body never comes
        data = rh.read_all(sock, 5, until=1)
    assert b"100 Continue" not in data
    [r] = rh.parse(data)
    assert r.status == 401 and r.headers.get("www-authenticate", "").startswith("Bearer"), r
    with rh.connect(server.port) as sock:  # and a key-holding client does get 100 Continue
        sock.sendall(rh.request("POST", "/v2/models/calc/infer", b"", AUTH, "Expect: 100-continue",
                                length=len(calc())))
        assert rh.read_all(sock, 0.5).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(calc())
        assert [r.status for r in rh.parse(rh.read_all(sock, 5, until=1))] == [200]


# -- item 11: a client that never reads ----------------------------------------------------
def test_a_client_that_pipelines_and_never_reads_stops_being_read(server):
    one = rh.request("GET", "/v2/health/live")
    total = 200_000  # ~8 MB of requests, ~15 MB of answers if all were buffered
    with rh.connect(server.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(3.0)
        sent = 0
        blob = one * 1000
        try:
            while sent < total:
                sock.sendall(blob)
                sent += 1000
        except TimeoutError:
            pass
    assert sent < total, "the server read every request while none of its answers was read"
    healthy(server)


# -- item 13: 413 on the headers ----------------------------------------------------------
def test_413_is_answered_on_the_headers_without_the_body(server):
    for extra in ((), ("Expect: 100-continue",)):
        with rh.connect(server.port) as sock:
            t0 = time.monotonic()
            sock.sendall(rh.request("POST", "/v2/models/calc/infer", b"", AUTH, *extra, length=10**9))
            data = rh.read_all(sock, 5, until=1)
            assert b"100 Continue" not in data
            assert [r.status for r in rh.parse(data)] == [413] and time.monotonic() - t0 < 4


# -- item 14: pipelining order ---------------------------------------------------------------
def test_a_malformed_request_behind_a_valid_one_is_answered_after_it(server):
    raw = infer(calc(id="first")) + b"GARBAGE\x00 / HTTP/1.1\r\n\r\n"
    out = rh.exchange(server.port, raw, until=2)
    assert [r.status for r in out][:1] == [200] and orjson.loads(out[0].body)["id"] == "first"
    assert [r.status for r in out] == [200, 400]


# -- item 15 ---------------------------------------------------------------------------------
def test_a_request_sent_then_write_side_shut_is_answered(server):
    only_native(server, "uvicorn closes the connection on the client's FIN (eof_received)")
    out = rh.exchange(server.port, infer(calc(id="half")), shut_wr=True)
    assert [r.status for r in out] == [200] and orjson.loads(out[0].body)["id"] == "half"


def test_http_0_9_request_lines_are_refused(server):
    with rh.connect(server.port) as sock:
        sock.sendall(b"GET /v2/health/live\r\n\r\n")
        data = rh.read_all(sock, 5)
    assert data.startswith(b"HTTP/1.1 400") or data.startswith(b"HTTP/1.1 505") or data == b"", data[:80]


def test_wrong_method_on_health_paths_is_405_with_allow(server):
    for path in ("/v2/health/live", "/v2/health/ready"):
        [r] = rh.exchange(server.port, rh.request("POST", path, b"x"), until=1)
        assert r.status == 405 and "GET" in r.headers.get("allow", ""), r


def test_the_key_comes_from_a_file_or_the_environment_never_the_command_line(server, tmp_path):
    cmdline = open(f"/proc/{server.proc.pid}/cmdline", "rb").read()
    assert KEY.encode() not in cmdline
    files = write_models(tmp_path)
    with served(files, "--http", server.front, cwd=tmp_path, env={"BRICKWORK_API_KEY": "env-key"}) as s:
        [r] = rh.exchange(s.port, rh.request("GET", "/v2"), until=1)
        assert r.status == 401
        [r] = rh.exchange(s.port, rh.request("GET", "/v2", b"", "Authorization: Bearer env-key"), until=1)
        assert r.status == 200
        assert b"env-key" not in open(f"/proc/{s.proc.pid}/cmdline", "rb").read()


def test_still_healthy_after_everything(server):
    healthy(server)
    assert os.path.exists(f"/proc/{server.proc.pid}")
