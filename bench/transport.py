"""The control round trip of a process worker, alone: what one batch's messages cost.

    python bench/transport.py [--trips 5000] [--rounds 3]

A spawned worker answers each request message with a reply, no model and no tensors (those
stay in shared memory either way), so what is measured is the transport that issue 12 item 4
is about (~125 µs of pipe work per batch on the digits CNN). Four ways, interleaved:

  pickled   brickwork's RunBatch / BatchDone (frozen slotted dataclasses holding TensorRefs)
            pickled through a multiprocessing Connection, as the engine did before engine/_wire.py
  tuples    the same fields as plain tuples through the same Connection
  doorbell  the fields packed with struct into a control block in shared memory, and a 1-byte
            os.write / os.read on raw pipe fds to wake the other side (no pickle, no framing)
  wire      what the engine does now (engine/_wire.py): the same RunBatch / BatchDone packed in
            a fixed struct layout, one framed os.write each way; the worker's end is
            _wire.Channel as in worker_main, the engine's end encodes and decodes as
            engine/_pipe.py does (here with a blocking read instead of the event loop)

Prints µs per round trip (median of rounds). ``doorbell`` is the floor of the design sketched
in bench/README.md (process workers) and is a measurement, not the engine's code; ``wire`` is
the engine's code (``pickled`` was the engine's before it).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import struct
import sys
import time
from multiprocessing import shared_memory
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

# seq, input offset, rows, cols | seq, output offset, compute_s, copied, needed
REQ = struct.Struct("<qqqq")
REP = struct.Struct("<qqdqq")


def _messages(seq: int):  # type: ignore[no-untyped-def]
    from brickwork.engine._shm import TensorRef
    from brickwork.engine._worker import BatchDone, RunBatch

    run = RunBatch(seq, "bw_1_in_0011223344", "bw_1_out_5566778899",
                   (TensorRef("pixels", "<f4", (32, 1, 32, 32), 0, "in"),), {})
    done = BatchDone(seq, (TensorRef("logits", "<f4", (32, 10), 0, "out"),), {}, 0.001, 1280, 1280)
    return run, done


def worker(mode: str, conn, shm_name: str) -> None:  # type: ignore[no-untyped-def]
    if mode == "pickled":
        _, done = _messages(0)
        while True:
            msg = conn.recv()
            if msg is None:
                return
            conn.send(type(done)(msg.seq, done.outputs, {}, 0.001, 1280, 1280))
    elif mode == "tuples":
        while True:
            msg = conn.recv()
            if msg is None:
                return
            conn.send((msg[0], (("logits", "<f4", (32, 10), 0, "out"),), None, 0.001, 1280, 1280))
    elif mode == "wire":
        from brickwork.engine._wire import Channel

        chan = Channel(conn.fileno())
        _, done = _messages(0)
        while True:
            msg = chan.recv()
            if msg is None:
                return
            chan.send(type(done)(msg.seq, done.outputs, {}, 0.001, 1280, 1280))
    else:
        from brickwork.engine._shm import WorkerArena

        arena = WorkerArena(shm_name.lstrip("/"))  # mapped as workers map arenas: no tracker
        buf = arena._mmap
        fd = conn.fileno()  # the doorbell: raw bytes on the Connection's socket, no framing
        while True:
            if not os.read(fd, 1):
                break
            seq, _offset, rows, _cols = REQ.unpack_from(buf, 0)
            if seq < 0:
                break
            REP.pack_into(buf, 64, seq, 0, 0.001, rows * 40, rows * 40)
            os.write(fd, b"x")
        del buf


def measure(mode: str, trips: int) -> float:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    shm = shared_memory.SharedMemory(create=True, size=4096)
    proc = ctx.Process(target=worker, args=(mode, child, shm.name), daemon=True)
    proc.start()
    child.close()
    bell = parent.fileno()
    try:
        if mode == "pickled":
            from brickwork.engine._shm import TensorRef
            from brickwork.engine._worker import RunBatch

            def trip(seq: int) -> None:  # the engine builds a RunBatch per batch, as run() does
                parent.send(RunBatch(seq, "bw_1_in_0011223344", "bw_1_out_5566778899",
                                     (TensorRef("pixels", "<f4", (32, 1, 32, 32), 0, "in"),), {}))
                parent.recv()
        elif mode == "tuples":
            def trip(seq: int) -> None:
                parent.send((seq, "bw_1_in_0011223344", "bw_1_out_5566778899",
                             (("pixels", "<f4", (32, 1, 32, 32), 0, "in"),), None))
                parent.recv()
        elif mode == "wire":
            from brickwork.engine._shm import TensorRef
            from brickwork.engine._wire import decode, encode, frame
            from brickwork.engine._worker import RunBatch

            rbuf = bytearray()

            def trip(seq: int) -> None:  # encode + one write; read until one whole frame; decode
                payload = encode(RunBatch(seq, "bw_1_in_0011223344", "bw_1_out_5566778899",
                                          (TensorRef("pixels", "<f4", (32, 1, 32, 32), 0, "in"),), {}))
                os.write(bell, frame(payload) + payload)
                while len(rbuf) < 4 or len(rbuf) < 4 + int.from_bytes(rbuf[:4], "big"):
                    rbuf.extend(os.read(bell, 1 << 16))
                n = 4 + int.from_bytes(rbuf[:4], "big")
                decode(bytes(rbuf[4:n]))
                del rbuf[:n]
        else:
            buf = shm.buf

            def trip(seq: int) -> None:
                REQ.pack_into(buf, 0, seq, 0, 32, 1024)
                os.write(bell, b"x")
                os.read(bell, 1)
                REP.unpack_from(buf, 64)

        for i in range(200):
            trip(i)
        t0 = time.perf_counter()
        for i in range(trips):
            trip(i)
        return (time.perf_counter() - t0) / trips * 1e6
    finally:
        if mode == "doorbell":
            REQ.pack_into(shm.buf, 0, -1, 0, 0, 0)
            os.write(bell, b"x")
        elif mode == "wire":
            from brickwork.engine._wire import encode, frame

            os.write(bell, frame(encode(None)) + encode(None))
        else:
            parent.send(None)
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()
        trip = None  # type: ignore[assignment]  # drops the closure's view of the block
        try:
            shm.close()
        except BufferError:  # a view is still exported: the mapping goes with the process
            pass
        shm.unlink()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trips", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    modes = ("pickled", "tuples", "doorbell", "wire")
    got: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(a.rounds):
        for m in modes:
            got[m].append(measure(m, a.trips))
    print(f"process-worker control round trip, {a.trips} trips, median of {a.rounds} interleaved rounds "
          f"({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    base = statistics.median(got["pickled"])
    for m in modes:
        med = statistics.median(got[m])
        print(f"  {m:<10} {med:8.1f} µs a round trip  ({med / base:4.2f}x)   rounds: "
              + ", ".join(f"{v:.1f}" for v in got[m]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
