"""Helpers for the chaos, fuzz and soak tests: a served pipeline's worker processes (found by
PID under the server's process), its memory, its /metrics figures, and a lean keep-alive
HTTP/1.1 client so that the load generator is not the bottleneck on a small machine."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
from tests.e2e.raw_http import parse_head


def children(pid: int) -> list[int]:
    """PIDs of the direct children of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def workers(server_pid: int) -> list[int]:
    """The server's engine worker processes (spawned; not multiprocessing's resource tracker)."""
    return [p for p in children(server_pid) if "spawn_main" in _cmdline(p) and running(p)]


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def assert_gone(pids: list[int], timeout_s: float = 10.0) -> None:
    """Every one of ``pids`` has exited; any that has not is killed (by PID) and reported."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if running(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived the server"


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def metrics(url: str) -> dict[str, float]:
    """``/metrics`` as ``{'name{labels}': value}``."""
    return parse_metrics(httpx.get(url + "/metrics", timeout=5.0).text)


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metric(url: str, name: str, **labels: str) -> float | None:
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return metrics(url).get(want)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on one socket: POST/GET, Content-Length bodies only
    (what the brickwork server sends). Reconnects when the server closes the connection."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 30.0) -> None:
        self.addr = (host, port)
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, b""
        return sock

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        head = [f"{method} {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        for attempt in (0, 1):
            sock = self.sock or self._connect()
            try:
                sock.sendall(data)
                return self._response()
            except (ConnectionError, _Closed):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _read(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise _Closed
        self.buf += chunk

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._read()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, headers = parse_head(head)
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._read()
        body, self.buf = self.buf[:n], self.buf[n:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _Closed(Exception):
    pass
