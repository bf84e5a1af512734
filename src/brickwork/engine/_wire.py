"""How messages between the engine and a worker process are laid out on their pipe.

Every message is one frame: a 4-byte big-endian length (or -1 and an 8-byte length past 2 GiB,
as ``multiprocessing.Connection`` frames), then the payload, whose first byte says what it is:

``B``  a :class:`~._messages.RunBatch` whose tensors all lie in shared memory, in a fixed
       ``struct`` layout: sequence number, the two arena names, and per tensor its name, dtype,
       shape, offset and arena;
``D``  a :class:`~._messages.BatchDone` likewise (sequence number, compute seconds, bytes copied,
       response-arena bytes needed, the output refs);
``P``  any other message, pickled: the rare ones (ready, failed, ping, forget, shutdown) and a
       batch or answer that carries tensors in the message itself (BYTES tensors, outputs larger
       than the response arena, every tensor when /dev/shm is full).

The two hot messages, one each way per batch, are packed and unpacked by ``struct`` in a few
microseconds instead of pickling two dataclasses (~15-20 µs each way on the shared 2-core box,
bench/README.md). Both ends are this program over a local pipe (never the network); ``P``
frames are pickles of brickwork's own messages.

:class:`Channel` is the worker's end: plain blocking reads and writes on the pipe's descriptor,
one ``read`` for a small frame (``Connection.recv`` costs two), one ``write`` per message.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

from ._messages import BatchDone, RunBatch
from ._shm import TensorRef

__all__ = ["Channel", "decode", "encode", "frame"]

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_RUN = struct.Struct("<cqHHH")  # kind, seq, len(in_arena), len(out_arena), tensors
_SEQ = struct.Struct("<cq")  # kind, seq: the part of a batch's head that changes per batch
_DONE = struct.Struct("<cqdqqH")  # kind, seq, compute_s, copied, out_needed, tensors
_REF = struct.Struct("<qcBHB")  # offset, arena ("i"/"o"), ndim, len(name), len(dtype)
_ARENA = {"in": b"i", "out": b"o"}
_ARENA_OF = {b"i": "in", b"o": "out"}
_READ_CHUNK = 1 << 16
_CACHED = 256
# what follows the sequence number (arena names, refs) -> decoded; a stage's batches repeat the
# same few layouts, so decoding is mostly one dict lookup instead of building TensorRefs
_runs: dict[bytes, tuple[str, str, tuple[TensorRef, ...]]] = {}
_dones: dict[bytes, tuple[TensorRef, ...]] = {}
# and the other way, what follows the fixed head of a batch (its arenas and refs) and of an
# answer (its refs) -> their bytes: encoding is mostly a lookup and one ``pack`` too
_run_tails: dict[tuple[str, str, tuple[TensorRef, ...]], bytes] = {}
_done_tails: dict[tuple[TensorRef, ...], bytes] = {}


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """The length header in front of ``payload``."""
    n = len(payload)
    return _SHORT.pack(n) if n <= 0x7FFFFFFF else _SHORT.pack(-1) + _LONG.pack(n)


def _refs(out: list[bytes], refs: tuple[TensorRef, ...]) -> None:
    for ref in refs:
        name = ref.name.encode()
        dtype = ref.dtype.encode()
        out.append(_REF.pack(ref.offset, _ARENA[ref.arena], len(ref.shape), len(name), len(dtype)))
        if ref.shape:
            out.append(struct.pack(f"<{len(ref.shape)}q", *ref.shape))
        out.append(name)
        out.append(dtype)


def _read_refs(buf: Any, at: int, count: int) -> tuple[tuple[TensorRef, ...], int]:
    refs = []
    for _ in range(count):
        offset, arena, ndim, n_name, n_dtype = _REF.unpack_from(buf, at)
        at += _REF.size
        shape = struct.unpack_from(f"<{ndim}q", buf, at) if ndim else ()
        at += 8 * ndim
        name = bytes(buf[at:at + n_name]).decode()
        at += n_name
        dtype = bytes(buf[at:at + n_dtype]).decode()
        at += n_dtype
        refs.append(TensorRef(name, dtype, shape, offset, _ARENA_OF[arena]))
    return tuple(refs), at


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value
    return value


def encode(msg: Any) -> bytes:
    """One message's payload (without the length header)."""
    kind = type(msg)
    if kind is RunBatch and not msg.pickled:
        key = (msg.in_arena, msg.out_arena, msg.inputs)
        rest = _run_tails.get(key)
        if rest is None:
            ain, aout = msg.in_arena.encode(), msg.out_arena.encode()
            parts = [_RUN.pack(b"B", 0, len(ain), len(aout), len(msg.inputs))[_SEQ.size:], ain, aout]
            _refs(parts, msg.inputs)
            rest = _remember(_run_tails, key, b"".join(parts))
        return _SEQ.pack(b"B", msg.seq) + rest
    if kind is BatchDone and not msg.pickled:
        head = _DONE.pack(b"D", msg.seq, msg.compute_s, msg.copied, msg.out_needed, len(msg.outputs))
        tail = _done_tails.get(msg.outputs)
        if tail is None:
            parts = []
            _refs(parts, msg.outputs)
            tail = _remember(_done_tails, msg.outputs, b"".join(parts))
        return head + tail
    return b"P" + pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)


def decode(payload: Any) -> Any:
    """The message ``encode`` made ``payload`` from (bytes, bytearray or a memoryview of one)."""
    kind = payload[0:1]
    if kind == b"B":
        _, seq, n_in, n_out, count = _RUN.unpack_from(payload, 0)
        key = bytes(payload[9:])
        known = _runs.get(key)
        if known is None:
            at = _RUN.size
            ain = bytes(payload[at:at + n_in]).decode()
            at += n_in
            aout = bytes(payload[at:at + n_out]).decode()
            inputs, end = _read_refs(payload, at + n_out, count)
            if end != len(payload):
                raise ValueError(f"a batch message of {len(payload)} bytes holds {end}")
            known = _remember(_runs, key, (ain, aout, inputs))
        return RunBatch(seq, known[0], known[1], known[2], {})
    if kind == b"D":
        _, seq, compute_s, copied, needed, count = _DONE.unpack_from(payload, 0)
        key = bytes(payload[_DONE.size - 2:])
        outputs = _dones.get(key)
        if outputs is None:
            outputs, end = _read_refs(payload, _DONE.size, count)
            if end != len(payload):
                raise ValueError(f"an answer message of {len(payload)} bytes holds {end}")
            _remember(_dones, key, outputs)
        return BatchDone(seq, outputs, {}, compute_s, copied, needed)
    if kind == b"P":
        return pickle.loads(payload[1:])
    raise ValueError(f"not a worker message: first byte {bytes(kind)!r}")


class Channel:
    """The worker's end of the pipe: blocking, whole messages, in order.

    ``recv`` raises ``EOFError`` when the engine's end is closed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        os.set_blocking(fd, True)

    def send(self, msg: Any) -> None:
        payload = encode(msg)
        data = memoryview(frame(payload) + payload)
        while data:
            data = data[os.write(self.fd, data):]

    def recv(self) -> Any:
        buf = self._buf
        while len(buf) < 4:
            self._fill()
        (n,) = _SHORT.unpack_from(buf, 0)
        head = 4
        if n == -1:
            while len(buf) < 12:
                self._fill()
            (n,) = _LONG.unpack_from(buf, 4)
            head = 12
        end = head + n
        if len(buf) < end:  # a large message: read the rest straight into one buffer
            whole = bytearray(end)
            whole[:len(buf)] = buf
            view = memoryview(whole)
            at = len(buf)
            while at < end:
                got = os.readv(self.fd, (view[at:],))
                if not got:
                    raise EOFError
                at += got
            del view
            buf.clear()
            return decode(memoryview(whole)[head:end])
        msg = decode(memoryview(buf)[head:end])
        del buf[:end]
        return msg

    def _fill(self) -> None:
        chunk = os.read(self.fd, _READ_CHUNK)
        if not chunk:
            raise EOFError
        self._buf += chunk
