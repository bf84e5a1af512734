"""Raw HTTP/1.1 over a loopback socket, for the abuse tests: send exactly these bytes, read
what comes back, split it into responses."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def parse(data: bytes) -> list[Response]:
    """Every complete response in ``data`` (Content-Length bodies; 1xx have none)."""
    out = []
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        status, headers = parse_head(head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, rest = _chunked(rest)
            if body is None:
                break
            out.append(Response(status, headers, body))
            data = rest
            continue
        length = 0 if status < 200 else int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        out.append(Response(status, headers, rest[:length]))
        data = rest[length:]
    return out


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """A response head (without its blank line): the status and the headers, names lowercased."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers


def _chunked(data: bytes) -> tuple[bytes | None, bytes]:
    body = b""
    while b"\r\n" in data:
        size_line, rest = data.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            end = rest.find(b"\r\n\r\n") if not rest.startswith(b"\r\n") else -2
            return (body, rest[end + 4:]) if end != -1 else (None, b"")
        if len(rest) < size + 2:
            return None, b""
        body += rest[:size]
        data = rest[size + 2:]
    return None, b""


def connect(port: int, timeout_s: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout_s)


def read_all(sock: socket.socket, timeout_s: float = 10.0, until: int | None = None) -> bytes:
    """Read until the server closes, ``until`` complete responses arrived, or ``timeout_s``."""
    data = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        if until is not None and len([r for r in parse(data) if r.status >= 200]) >= until:
            break
    return data


def exchange(port: int, raw: bytes, *, timeout_s: float = 10.0, shut_wr: bool = False,
             until: int | None = None) -> list[Response]:
    with connect(port, timeout_s) as sock:
        sock.sendall(raw)
        if shut_wr:
            sock.shutdown(socket.SHUT_WR)
        return [r for r in parse(read_all(sock, timeout_s, until)) if r.status >= 200]


def request(method: str, path: str, body: bytes = b"", *headers: str, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: t", *headers]
    if body or length is not None or method == "POST":
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
