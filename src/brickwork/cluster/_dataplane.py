"""The data plane: a replica actor's own socket for batches of plain tensors.

An empty Ray actor call costs 0.8 ms of round trip here (0.4 ms of the caller's CPU): Ray's
task submission, scheduling and bookkeeping, whatever the payload. Every full batch paid it on
top of the ingress's own work, which kept the ray backend near 0.2x the local one. So each
actor also serves the existing frames (``_frames.py``: a JSON header and aligned raw buffers,
never unpickled) on a TCP socket of its own, and the ingress sends its plain-tensor batches
there: one ``sendmsg`` and one read each way. Ray keeps everything else: placement, naming
(several ingresses share an actor, each with its own connection), lifecycle, death detection,
the object-ref path and the general (pickled) path for strings, big batches and kept-remote
outputs.

The wire, after the handshake, is a stream of messages, each an 8-byte header (``<II``: body
length, tag) and a body:

- handshake: the ingress sends :data:`MAGIC` and the actor's 32-byte token (a Ray call,
  ``endpoint()``, hands it to the ingress); the actor answers an empty :data:`ACK` or, on a
  wrong token, closes the connection without a byte.
- ingress -> actor: :data:`BATCH`, the body a frame. One batch at a time is computed per actor
  (a lock shared with the Ray-call path); the answers on one connection come in the order of
  its requests.
- actor -> ingress: :data:`FRAME` (the outputs as a frame) or :data:`HELD` (an 8-byte key:
  the answer is an error, or outputs that are no plain tensors, or kept in the cluster; the
  ingress takes it with the Ray call ``take(key)``, as a pickled ``BatchAnswer`` from Ray).

The actor listens only on its node's own address as Ray reports it
(``ray.util.get_node_ip_address()``), on an ephemeral port. A closed connection is handled by
the ingress as the actor's death (it is killed and replaced; its batches are retried).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ACK", "BATCH", "FRAME", "HEADER", "HELD", "MAGIC", "MAX_BODY", "ClientProtocol", "FrameServer"]

log = logging.getLogger("brickwork.cluster")

MAGIC = b"BWD1"
TOKEN_BYTES = 32
HEADER = struct.Struct("<II")  # body length, tag
BATCH, FRAME, HELD, ACK = 1, 2, 3, 4
MAX_BODY = 64 << 20  # far above a frame's limit: a longer message is a broken peer
AUTH_TIMEOUT_S = 10.0


def _recv_exact(conn: socket.socket, n: int) -> bytearray | None:
    """``n`` bytes, or None when the peer closed first."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = conn.recv_into(view[got:])
        if not k:
            return None
        got += k
    return buf


class FrameServer:
    """The actor's side: a listening socket and one thread per connection, each computing its
    batches with ``handle(body) -> (tag, body)`` in order. ``dropped(conn_id)`` is called when a
    connection ends (its held answers will never be taken)."""

    def __init__(self, host: str, handle: Callable[[bytearray, int], tuple[int, bytes]],
                 dropped: Callable[[int], None]) -> None:
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self._handle = handle
        self._dropped = dropped
        self._sock = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._next = 0
        threading.Thread(target=self._accept, name="brickwork-data-plane", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            self._next += 1
            threading.Thread(target=self._serve, args=(conn, self._next), name=f"brickwork-data-plane-{self._next}",
                             daemon=True).start()

    def _serve(self, conn: socket.socket, conn_id: int) -> None:
        try:
            conn.settimeout(AUTH_TIMEOUT_S)
            hello = _recv_exact(conn, len(MAGIC) + TOKEN_BYTES)
            if hello is None or not hmac.compare_digest(bytes(hello), MAGIC + self.token):
                log.warning("data plane: refused a connection without the actor's token")
                return
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(HEADER.pack(0, ACK))
            while True:
                head = _recv_exact(conn, HEADER.size)
                if head is None:
                    return
                length, tag = HEADER.unpack(head)
                if tag != BATCH or length > MAX_BODY:
                    log.warning("data plane: a malformed message (tag %d, %d bytes); closing", tag, length)
                    return
                body = _recv_exact(conn, length)
                if body is None:
                    return
                out_tag, out = self._handle(body, conn_id)
                conn.sendmsg([HEADER.pack(len(out), out_tag), out])
        except OSError:
            return
        finally:
            conn.close()
            self._dropped(conn_id)

    def close(self) -> None:
        self._sock.close()


class ClientProtocol(asyncio.Protocol):
    """The ingress's side of one connection: parses answers as they arrive and hands each to
    ``on_answer(tag, body)``; ``on_lost(self)`` once the connection is gone."""

    def __init__(self, on_answer: Callable[[int, bytes], None],
                 on_lost: Callable[[ClientProtocol], None]) -> None:
        self.on_answer = on_answer
        self.on_lost = on_lost
        self.transport: Any = None  # uvloop's transport is no asyncio.Transport
        self.acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buf = bytearray()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= HEADER.size:
            length, tag = HEADER.unpack_from(buf)
            end = HEADER.size + length
            if len(buf) < end:
                return
            body = bytes(buf[HEADER.size:end])
            del buf[:end]
            if tag == ACK:
                if not self.acked.done():
                    self.acked.set_result(None)
                continue
            self.on_answer(tag, body)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.acked.done():
            self.acked.set_exception(ConnectionError("the actor closed the data plane connection"))
            self.acked.exception()  # retrieved: nobody may be waiting for it any more
        self.on_lost(self)

    def send(self, frame: bytes) -> None:
        self.transport.writelines([HEADER.pack(len(frame), BATCH), frame])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
