"""Memory, descriptors and connections a client controls, against `brickwork serve` on both
HTTP fronts: header floods and abandoned bodies leave no memory behind, the connection cap
answers 503 cleanly and (native front) makes room by closing idle or slow connections, and the
open-file limit is raised at start. Servers are subprocesses on loopback, stopped by PID."""

from __future__ import annotations

import resource
import threading
import time

import orjson
import pytest
from tests.e2e import raw_http as rh
from tests.e2e.fault_kit import rss_bytes
from tests.e2e.serve_helpers import FRONTS, served, write_models

pytestmark = pytest.mark.timeout(180)

MiB = 1024 * 1024


def calc(rows: int = 1, value: float = 1.0) -> bytes:
    return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4],
                                     "data": [value] * (4 * rows)}]})


def ok(port: int) -> int:
    out = rh.exchange(port, rh.request("POST", "/v2/models/calc/infer", calc()), until=1)
    return out[0].status if out else 0


def settle_rss(pid: int, seconds: float = 1.5) -> int:
    time.sleep(seconds)
    return rss_bytes(pid)


@pytest.fixture(params=FRONTS)
def front(request):
    return request.param


def test_header_floods_leave_no_memory_behind(tmp_path, front):
    files = write_models(tmp_path)
    with served(files, "--http", front, cwd=tmp_path) as s:
        ok(s.port)
        before = settle_rss(s.proc.pid)
        block = b"X: a\r\n" * 400_000  # 2.4 MB in 400,000 header lines
        socks = []
        for _ in range(5):
            sock = rh.connect(s.port)
            sock.sendall(b"GET /v2 HTTP/1.1\r\nHost: t\r\n")
            try:
                sock.sendall(block)
            except OSError:
                pass  # refused (and closed) part-way: as it should
            socks.append(sock)
        for sock in socks:
            sock.close()
        after = settle_rss(s.proc.pid)
        assert after - before < 24 * MiB, (before, after)
        assert ok(s.port) == 200


def test_abandoned_bodies_are_freed_when_the_client_leaves(tmp_path, front):
    files = write_models(tmp_path)
    with served(files, "--http", front, cwd=tmp_path) as s:
        ok(s.port)
        before = settle_rss(s.proc.pid)
        chunk = b"0" * MiB
        for _ in range(6):  # 6 x 60 MB of a 64 MB body, then the client leaves
            with rh.connect(s.port, timeout_s=30) as sock:
                sock.sendall(rh.request("POST", "/v2/models/calc/infer", b"", length=64 * 1000 * 1000))
                for _ in range(60):
                    sock.sendall(chunk)
        after = settle_rss(s.proc.pid, 2.0)
        assert after - before < 100 * MiB, f"{(after - before) / MiB:.0f} MiB still held"
        assert ok(s.port) == 200


def test_idle_and_slow_connections_make_room_for_new_clients(tmp_path):
    files = write_models(tmp_path)
    with served(files, "--max-connections", "20", cwd=tmp_path) as s:
        held = []
        for i in range(30):  # idle ones and slow ones (a request line, never finished)
            sock = rh.connect(s.port)
            if i % 2:
                sock.sendall(b"POST /v2/models/calc/infer HTTP/1.1\r\n")
            held.append(sock)
        time.sleep(0.3)
        for _ in range(5):
            assert ok(s.port) == 200
        # the oldest were closed to make room
        closed = 0
        for sock in held:
            sock.settimeout(0.2)
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                pass
            sock.close()
        assert closed >= 10


def test_at_the_connection_limit_with_every_connection_busy_new_ones_get_503(tmp_path, front):
    files = write_models(tmp_path)
    with served(files, "--http", front, "--max-connections", "2", cwd=tmp_path) as s:
        busy = []
        threads = []
        for _ in range(2):  # x = 504: the model sleeps 1 s
            sock = rh.connect(s.port)
            sock.sendall(rh.request("POST", "/v2/models/calc/infer", calc(value=504.0)))
            busy.append(sock)
        time.sleep(0.3)
        statuses = []
        t = threading.Thread(target=lambda: statuses.append(ok(s.port)))
        threads.append(t)
        t.start()
        for t in threads:
            t.join(10)
        assert statuses == [503]
        for sock in busy:
            assert [r.status for r in rh.parse(rh.read_all(sock, 5, until=1))] == [200]
            sock.close()
        time.sleep(0.2)
        assert ok(s.port) == 200


def test_the_open_file_limit_is_raised_to_the_hard_limit(tmp_path, front):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.skip("the hard open-file limit here is too low to lower the soft one")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    files = write_models(tmp_path)
    with served(files, "--http", front, cwd=tmp_path, preexec_fn=lower) as s:
        for line in open(f"/proc/{s.proc.pid}/limits"):
            if line.startswith("Max open files"):
                got_soft, got_hard = line.split()[3:5]
                assert int(got_soft) == int(got_hard) == hard, line
                break
        else:
            raise AssertionError("no 'Max open files' in /proc/PID/limits")
        # and more connections than the old soft limit are served
        socks = [rh.connect(s.port) for _ in range(300)]
        try:
            assert ok(s.port) == 200
        finally:
            for sock in socks:
                sock.close()


FD_SCRIPT = r'''
import logging, os, resource, subprocess, sys, time
logging.basicConfig(level=logging.WARNING)
import brickwork as bw
from brickwork.server import ServerThread


def double(x: float) -> float:
    return 2 * x


with ServerThread(bw.function(double, outputs="y").compile(name="d")) as s:
    s._server.max_connections = 10**6  # past what the descriptors allow, to run out of them
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 10, hard))
    clients = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys, time; port = int(sys.argv[1]); "
         "s = [socket.create_connection(('127.0.0.1', port)) for _ in range(40)]; time.sleep(7)",
         str(s.port)], preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard)))
    clients.wait(30)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    time.sleep(1.0)
    import httpx
    print("after", httpx.get(s.url + "/v2/health/live").status_code, flush=True)
'''


def test_running_out_of_descriptors_is_logged_and_survived(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", FD_SCRIPT], capture_output=True, text=True, timeout=90,
                       cwd=tmp_path)
    assert "after 200" in r.stdout, (r.stdout, r.stderr[-2000:])
    assert "accepting connections fails" in r.stderr and "open files in use" in r.stderr, r.stderr[-2000:]
