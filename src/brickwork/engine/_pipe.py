"""The engine's end of a worker's control pipe, on the event loop: framed messages over a
non-blocking socket, with partial reads and writes handled.

``multiprocessing.Connection.send``/``recv`` assume a blocking descriptor. Watching the pipe
with ``loop.add_reader`` (uvloop makes the descriptor non-blocking) turned every message larger
than the socket buffer (a batch of 10,000 texts, a 16 MiB output) into a ``BlockingIOError``
half-way through, which looked like a dead worker. Here the parent end is non-blocking on
every loop: a send writes what the socket takes and the loop writes the rest when it drains
(``add_writer``), in order; reads gather bytes until a whole frame is there. The frames are
``Connection``'s own (a 4-byte big-endian length, or -1 and an 8-byte length past 2 GiB); the
payloads are :mod:`._wire`'s (a batch and its answer in a fixed ``struct`` layout, anything
else pickled: both ends are this program, never the network). The worker's end is
:class:`~._wire.Channel`, plain blocking reads and writes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ._wire import decode, encode, frame

__all__ = ["WorkerPipe"]

log = logging.getLogger("brickwork.engine")

_READ_CHUNK = 1 << 18
_SMALL = 1 << 16
_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")


class WorkerPipe:
    """Send and receive whole messages on ``conn`` without ever blocking the loop.
    ``on_message(msg)`` is called per message, in order; ``on_broken()`` once, when the pipe
    closes or fails (the worker is gone)."""

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[Any], None], on_broken: Callable[[], None]) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        self._loop = loop
        self._on_message = on_message
        self._on_broken = on_broken
        self._rbuf = bytearray()
        self._chunk = bytearray(_READ_CHUNK)
        self._view = memoryview(self._chunk)
        self._wbuf: deque[memoryview] = deque()
        self._writing = False
        self.closed = False
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, self._on_readable)

    def send(self, msg: Any) -> bool:
        """Queue one message; False when the pipe is closed or broke (then ``on_broken`` ran)."""
        if self.closed:
            return False
        payload = encode(msg)
        if len(payload) <= _SMALL:  # one write for the common, small message
            self._wbuf.append(memoryview(frame(payload) + payload))
        else:
            self._wbuf.append(memoryview(frame(payload)))
            self._wbuf.append(memoryview(payload))
        if not self._writing:
            return self._flush()
        return True

    def _flush(self) -> bool:
        while self._wbuf:
            buf = self._wbuf[0]
            try:
                n = os.write(self.fd, buf)
            except BlockingIOError:
                n = 0
            except OSError:
                self._broken()
                return False
            if n < len(buf):
                self._wbuf[0] = buf[n:]
                if not self._writing:
                    self._writing = True
                    self._loop.add_writer(self.fd, self._on_writable)
                return True
            self._wbuf.popleft()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self.fd)
        return True

    def _on_writable(self) -> None:
        if not self.closed:
            self._flush()

    def _on_readable(self) -> None:
        if self.closed:
            return
        chunk, view = self._chunk, self._view
        try:
            while True:  # into one reused buffer: no fresh 1 MiB allocation per wake-up
                try:
                    n = os.readv(self.fd, (chunk,))
                except BlockingIOError:
                    break
                if not n:
                    raise EOFError
                self._rbuf += view[:n]
                if n < _READ_CHUNK:
                    break
        except (EOFError, OSError):
            self._deliver()  # what arrived whole before the end still counts
            self._broken()
            return
        self._deliver()

    def _deliver(self) -> None:
        buf = self._rbuf
        at = 0
        while not self.closed:
            if len(buf) - at < 4:
                break
            (n,) = _SHORT.unpack_from(buf, at)
            head = 4
            if n == -1:
                if len(buf) - at < 12:
                    break
                (n,) = _LONG.unpack_from(buf, at + 4)
                head = 12
            end = at + head + n
            if len(buf) < end:
                break
            try:
                msg = decode(memoryview(buf)[at + head:end])  # the view dies here
            except Exception:  # not a message this program wrote: the pipe is out of step
                log.exception("worker pipe %d: a message that does not decode; closing it", self.fd)
                self._rbuf = bytearray()  # (not clear(): the traceback may still hold a view)
                self._broken()
                return
            at = end
            self._on_message(msg)
        if at:
            del buf[:at]

    def _broken(self) -> None:
        if self.closed:
            return
        self.close()
        self._on_broken()

    def close(self) -> None:
        """Stop watching the descriptor and close it (no callback)."""
        if self.closed:
            return
        self.closed = True
        self._wbuf.clear()
        if not self._loop.is_closed():
            self._loop.remove_reader(self.fd)
            if self._writing:
                self._loop.remove_writer(self.fd)
        self._writing = False
        try:
            self.conn.close()
        except OSError:
            pass
