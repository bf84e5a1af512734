"""Soak under attack: valid clients, health probes and a hostile client side by side against
`brickwork serve`. The hostile one cycles through slow headers, gzip bombs, two codings,
duplicated outputs, header floods, a pipelining client that never reads, abandoned bodies,
type confusion, over-limit lengths and malformed HTTP. Throughout: every valid request is
answered 200, every health probe within 1 s, and the server's RSS stays flat after warm-up.

40 s by default (native front); ``BRICKWORK_SOAK=1``: 300 s on each front
(``BRICKWORK_SOAK_HOSTILE_S`` sets the seconds).
"""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
from collections.abc import Callable

import orjson
import pytest
from tests.e2e import raw_http as rh
from tests.e2e.fault_kit import RawClient, rss_bytes
from tests.e2e.serve_helpers import FRONTS, served, write_models

FULL = os.environ.get("BRICKWORK_SOAK") == "1"
SECONDS = float(os.environ.get("BRICKWORK_SOAK_HOSTILE_S") or (300.0 if FULL else 40.0))
WARMUP_S = SECONDS / 4
MiB = 1024 * 1024
# RSS: the peak of the last quarter over the peak between warm-up and then. A window's peak
# depends on which attack was in flight (an abandoned 20 MiB body, a 2.4 MB header block) and on
# what the allocator kept of the last one: 53 MiB was seen once on a fresh clone (142 -> 195),
# 0 in most runs. A leak grows with every attack; the long soak (BRICKWORK_SOAK=1, 300 s) checks
# that trend.
MAX_GROWTH = 64 * MiB
# ... or a late step that stays under what the limits allow at once: a gzip bomb is decoded up to
# --max-body-bytes (64 MiB; this one is 60 MB) and joined (x2), so one attack may lift the
# allocator's high-water mark by ~128 MiB whenever it first meets other traffic's buffers, early
# or late in the run; seen twice on fresh clones ending at 195 MiB from 97 and 142, the plateau
# most runs reach within the warm-up (186 -> 186). A leak passes this bound within a few cycles
# of the attacks (one bomb per cycle: ~24 in 40 s on the test machine).
MAX_ABOVE_START = 2 * 64 * MiB + 64 * MiB

pytestmark = pytest.mark.timeout(int(SECONDS * 2 + 120))


def calc(rows: int, **extra) -> bytes:
    return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4],
                                     "data": [float(i % 7) for i in range(4 * rows)]}], **extra})


INFER = "/v2/models/calc/infer"
BOMB = gzip.compress(b" " * (60 * 1000 * 1000), 9)  # ~60 KB that decodes to 60 MB


def _send(port: int, raw: bytes, *, read_s: float = 2.0) -> None:
    try:
        with rh.connect(port, timeout_s=5) as sock:
            sock.sendall(raw)
            rh.read_all(sock, read_s, until=1)
    except OSError:
        pass  # the server may close on us mid-send: that is its answer


def _slowloris(port: int) -> None:
    socks = []
    try:
        for _ in range(30):
            sock = rh.connect(port)
            sock.sendall(b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: t\r\n")
            socks.append(sock)
        time.sleep(1.0)
        for sock in socks:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass
    finally:
        for sock in socks:
            sock.close()


def _never_reads(port: int) -> None:
    with rh.connect(port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(1.0)
        blob = rh.request("GET", "/v2/health/ready") * 2000
        try:
            for _ in range(50):
                sock.sendall(blob)
        except OSError:
            pass


def _abandoned_body(port: int) -> None:
    try:
        with rh.connect(port) as sock:
            sock.sendall(rh.request("POST", INFER, b"", length=30 * MiB))
            chunk = b"1" * MiB
            for _ in range(20):
                sock.sendall(chunk)
    except OSError:
        pass


def _header_flood(port: int) -> None:
    block = b"X: a\r\n" * 400_000
    _send(port, b"GET /v2 HTTP/1.1\r\nHost: t\r\n" + block + b"\r\n", read_s=1.0)


HOSTILE: list[Callable[[int], None]] = [
    _slowloris,
    lambda p: _send(p, rh.request("POST", INFER, BOMB, "Content-Encoding: gzip")),
    lambda p: _send(p, rh.request("POST", INFER, gzip.compress(BOMB), "Content-Encoding: gzip",
                                  "Content-Encoding: gzip")),
    lambda p: _send(p, rh.request("POST", INFER, calc(1000, outputs=[{"name": "y"}] * 200))),
    _header_flood,
    _never_reads,
    _abandoned_body,
    lambda p: _send(p, rh.request("POST", INFER, orjson.dumps(
        {"inputs": [{"name": "x", "datatype": ["FP32"], "shape": [1, 4], "data": [1, 2, 3, 4]}]}))),
    lambda p: _send(p, rh.request("POST", INFER, b"", length=10**10)),
    lambda p: _send(p, b"GET /v2 HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"),
    lambda p: _send(p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64)),  # TLS hello
]


@pytest.mark.parametrize("front", FRONTS if FULL else ("native",))
def test_valid_traffic_and_probes_are_unharmed_by_hostile_clients(tmp_path, front):
    files = write_models(tmp_path)
    with served(files, "--http", front, "--header-timeout-s", "2", "--body-timeout-s", "4",
                cwd=tmp_path) as s:
        stop = threading.Event()
        failures: list[str] = []
        answered = [0]
        probes: list[float] = []
        rss: list[tuple[float, int]] = []
        attacks = [0]
        t0 = time.monotonic()

        def valid(seed: int) -> None:
            client = RawClient(s.port, timeout_s=30.0)
            i = seed
            try:
                while not stop.is_set():
                    rows = 1 + i % 8
                    status, _, body = client.request("POST", INFER, calc(rows, id=str(i)))
                    doc = orjson.loads(body)
                    if status != 200 or doc.get("id") != str(i):
                        failures.append(f"valid request {i}: {status} {body[:200]!r}")
                    answered[0] += 1
                    i += 2
            except Exception as exc:  # any failure of a valid request counts
                failures.append(f"valid client {seed}: {type(exc).__name__}: {exc}")
            finally:
                client.close()

        def probe() -> None:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    out = rh.exchange(s.port, rh.request("GET", "/v2/health/live"), timeout_s=1.0, until=1)
                    took = time.monotonic() - t
                    if [r.status for r in out] != [200] or took > 1.0:
                        failures.append(f"probe at {t - t0:.1f} s: {[r.status for r in out]} in {took:.2f} s")
                    probes.append(took)
                except OSError as exc:
                    failures.append(f"probe at {t - t0:.1f} s: {exc}")
                stop.wait(0.2)

        def hostile() -> None:
            n = 0
            while not stop.is_set():
                HOSTILE[n % len(HOSTILE)](s.port)
                n += 1
                attacks[0] = n

        def sample() -> None:
            while not stop.is_set():
                rss.append((time.monotonic() - t0, rss_bytes(s.proc.pid)))
                stop.wait(0.5)

        threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in
                   ((valid, (0,)), (valid, (1,)), (probe, ()), (hostile, ()), (sample, ()))]
        for t in threads:
            t.start()
        stop.wait(SECONDS)
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert not failures, failures[:10]
        assert answered[0] > 100 and attacks[0] >= len(HOSTILE) and len(probes) > SECONDS
        after_warmup = max(v for t, v in rss if WARMUP_S <= t < SECONDS * 3 / 4)
        last = max(v for t, v in rss if t >= SECONDS * 3 / 4)
        print(f"\n{front}: {answered[0]} valid answered, {attacks[0]} attacks, {len(probes)} probes "
              f"(max {max(probes) * 1000:.0f} ms), RSS {rss[0][1] / MiB:.0f} at start, "
              f"{after_warmup / MiB:.0f} -> {last / MiB:.0f} MiB")
        start = rss[0][1]
        assert last - after_warmup < MAX_GROWTH or last - start < MAX_ABOVE_START, (
            start / MiB, after_warmup / MiB, last / MiB)
        assert s.proc.poll() is None
