"""Process workers under large messages, on uvloop (the server's loop): a batch of 10,000 texts
and FP32 tensors of 5-16 MiB cross the worker pipe whole, on every backend.

Before the fix, uvloop's ``add_reader`` made the worker pipe non-blocking and
``Connection.send``/``recv`` raised ``BlockingIOError`` half-way through any message larger
than the socket buffer; the engine took that for a dead worker and called the request poison.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvloop
from tests.integration import engine_bricks as eb
from tests.integration import fault_bricks as fb

import brickwork as bw
from brickwork.graph import load_pipeline
from brickwork.pipeline import Pipeline
from brickwork.server import ServerThread

pytestmark = pytest.mark.timeout(180)

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "pipeline.yaml"
BACKENDS = ("local", "process")


def _texts(n: int) -> np.ndarray:
    words = ("I love it, great!", "terrible and awful", "an ordinary day", "best thing ever!!")
    return np.array([f"{words[i % 4]} #{i}" for i in range(n)], dtype=object)


def _shm_left() -> list[str]:
    return [p.name for p in Path("/dev/shm").glob(f"bw_{os.getpid()}_*")]


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_quickstart_answers_thousands_of_texts_in_one_request_on_every_backend(n: int) -> None:
    plan = load_pipeline(QUICKSTART).plan
    texts = _texts(n)

    async def answer(backend: str) -> dict[str, np.ndarray]:
        async with Pipeline(plan, backend=backend) as pipeline:
            first = await pipeline.ainfer({"text": texts})
            again = await pipeline.ainfer({"text": texts})  # the grown arenas are reused
            np.testing.assert_array_equal(first["probability"], again["probability"])
            if backend == "process":
                stats = pipeline.stats()["stages"]
                assert all(s["restarts"] == 0 and s["errors"] == {} for s in stats.values()), stats
            return dict(first)

    answers = {backend: uvloop.run(answer(backend)) for backend in BACKENDS}
    for backend, out in answers.items():
        assert out["probability"].shape == (n, 1) and out["decision"].shape == (n,), backend
        np.testing.assert_allclose(out["probability"], answers["local"]["probability"], rtol=1e-6)
        assert out["decision"].tolist() == answers["local"]["decision"].tolist()
    assert not _shm_left()


@pytest.mark.parametrize("mib", [5, 16])
def test_fp32_tensors_of_megabytes_round_trip_on_every_backend(mib: int) -> None:
    rows = mib * (1 << 20) // 16  # FP32[rows, 4]
    x = np.random.default_rng(mib).random((rows, 4), dtype=np.float32)

    async def answer(backend: str) -> list[np.ndarray]:
        node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                           outputs=[("y", "FP32", (-1, 4))], worker="thread")
        async with Pipeline(node.compile().plan, backend=backend) as pipeline:
            return [(await pipeline.ainfer({"x": x}))["y"] for _ in range(3)]

    for backend in BACKENDS:
        for y in uvloop.run(answer(backend)):
            np.testing.assert_array_equal(y, x * 2)
    assert not _shm_left()


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)


def test_a_stage_whose_respawns_fail_keeps_being_respawned_and_fails_liveness(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Respawning fails many times in a row (past the three attempts that used to be all):
    supervision keeps trying with backoff and logs every failure, requests get a fast 503
    meanwhile, /v2/health/live fails once the stage has been down past max_down_s, and all of
    it heals when the worker can load again."""
    gate = tmp_path / "gate"
    node = bw.brick(fb.GatedLoad(str(gate)), worker="process", max_down_s=0.5)
    caplog.set_level(logging.WARNING, logger="brickwork.faults")
    try:
        import tritonclient.grpc as grpcclient

        import brickwork.server._grpc  # noqa: F401 - the gRPC front is installed
        options = {"grpc_port": 0}
    except ImportError:
        grpcclient, options = None, {}

    def grpc_live(server: ServerThread) -> bool | None:
        return None if grpcclient is None else grpcclient.InferenceServerClient(server.grpc_url).is_server_live()

    with ServerThread(node.compile(name="gated"), **options) as server, httpx.Client(timeout=10.0) as http:
        infer = server.url + "/v2/models/gated/infer"
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}
        assert http.post(infer, json=body).json()["outputs"][0]["data"] == [2.0, 4.0]
        assert http.get(server.url + "/v2/health/live").status_code == 200
        assert grpc_live(server) in (True, None)
        pipeline = server.app.models["gated"].pipeline
        (replica,) = pipeline._executor.stages["gated"].replicas
        gate.touch()
        os.kill(replica.pid, signal.SIGKILL)
        _wait(lambda: replica.supervisor.spawn_failures >= 4, 60, "four failed respawns")
        t0 = time.monotonic()
        r = http.post(infer, json=body)
        assert r.status_code == 503 and time.monotonic() - t0 < 5, r.text  # fast, not held
        live = http.get(server.url + "/v2/health/live")
        assert live.status_code == 503 and "max_down_s=0.5" in live.json()["error"], live.text
        assert grpc_live(server) in (False, None)  # gRPC's ServerLive says the same
        assert http.get(server.url + "/v2/health/ready").status_code == 503
        gate.unlink()
        _wait(lambda: replica.alive, 60, "the worker back once it can load")
        assert http.get(server.url + "/v2/health/live").status_code == 200
        assert grpc_live(server) in (True, None)
        assert http.post(infer, json=body).json()["outputs"][0]["data"] == [2.0, 4.0]
        info = pipeline.stats()["stages"]["gated"]["replica_info"][0]
        assert info["restarts"] == 1 and info["spawn_failures"] >= 4 and info["last_downtime_s"] > 0.5
    failures = [r for r in caplog.records if "could not be respawned" in r.getMessage()]
    assert len(failures) >= 4 and "cannot load while" in failures[0].getMessage()


def test_reaping_a_dead_worker_never_blocks_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker stuck in the kernel cannot be reaped at once; the join must happen off the
    loop. Process.join is made slow (3 s) for the test: the loop keeps answering meanwhile."""
    import multiprocessing.process as mpp

    real_join = mpp.BaseProcess.join

    def slow_join(self, timeout=None):
        time.sleep(3.0)
        return real_join(self, timeout)

    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))], worker="process")

    async def main() -> float:
        async with node.compile() as pipeline:
            (replica,) = pipeline._executor.stages["scale"].replicas
            monkeypatch.setattr(mpp.BaseProcess, "join", slow_join)
            os.kill(replica.pid, signal.SIGKILL)
            worst = 0.0
            t = time.monotonic()
            for _ in range(40):  # 2 s of 50 ms ticks: a blocked loop shows as one long tick
                await asyncio.sleep(0.05)
                now = time.monotonic()
                worst, t = max(worst, now - t), now
            monkeypatch.setattr(mpp.BaseProcess, "join", real_join)
            return worst

    assert uvloop.run(main()) < 1.5


def test_idle_arenas_are_released_and_made_again_on_the_next_batch() -> None:
    """A burst of large batches must not hold /dev/shm for good: arenas idle for arena_idle_s
    are unlinked (the worker unmaps them too) and made again, at the default size, when needed."""
    from brickwork.engine import ProcessBackend

    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))])
    big = np.random.default_rng(0).random((600_000, 4), dtype=np.float32)  # 9.6 MB

    async def main() -> None:
        async with Pipeline(node.compile().plan, backend=ProcessBackend(arena_idle_s=0.3)) as pipeline:
            np.testing.assert_array_equal((await pipeline.ainfer({"x": big}))["y"], big * 2)
            info = pipeline.stats()["stages"]["scale"]["replica_info"][0]
            assert info["arena_bytes"]["in"] >= big.nbytes and _shm_left()
            deadline = time.monotonic() + 20
            while _shm_left() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not _shm_left(), "idle arenas were not released"
            info = pipeline.stats()["stages"]["scale"]["replica_info"][0]
            assert info["arena_bytes"] == {"in": 0, "out": 0}
            small = big[:10]
            np.testing.assert_array_equal((await pipeline.ainfer({"x": small}))["y"], small * 2)
            assert pipeline.stats()["stages"]["scale"]["replica_info"][0]["arena_bytes"]["in"] == 4 << 20

    uvloop.run(main())
    assert not _shm_left()


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_worker_pipe_carries_messages_of_any_size_in_order(loop_factory) -> None:
    """The engine's end of the pipe against the worker's blocking end (``_wire.Channel``):
    small and 24 MB messages interleaved, both ways, whole and in order, the loop never blocked."""
    import multiprocessing as mp
    import threading

    from brickwork.engine._pipe import WorkerPipe
    from brickwork.engine._wire import Channel

    parent, child_conn = mp.Pipe(duplex=True)
    child = Channel(child_conn.fileno())
    sizes = [10, 24 << 20, 3, 1 << 20, 7, 24 << 20, 1]
    echoed: list[int] = []

    def worker() -> None:  # echoes every message back, blocking, like worker_main
        for _ in sizes:
            child.send(child.recv())

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def on_message(msg: bytes) -> None:
            echoed.append(len(msg))
            assert msg[:1] == b"x" and msg[-1:] == b"x"
            if len(echoed) == len(sizes) and not done.done():
                done.set_result(None)

        pipe = WorkerPipe(parent, loop, on_message, lambda: done.set_exception(AssertionError("broke")))
        for n in sizes:
            assert pipe.send(b"x" * n)  # returns at once, whatever the size
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not done.done():
                await asyncio.sleep(0.001)
                ticks += 1

        await asyncio.gather(asyncio.wait_for(done, 60), ticker())
        pipe.close()
        assert ticks > 0

    loop = loop_factory()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    thread.join(10)
    assert echoed == sizes
