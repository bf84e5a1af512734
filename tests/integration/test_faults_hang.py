"""A model that hangs in a worker process: its callers get 504 within ``timeout_s`` + 0.1 s, the
stuck worker is killed (by pid) and replaced by one that warms up first, and later requests
succeed. Without a ``timeout_s``, ``health_timeout_s`` decides when a worker counts as hung."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest
from tests.e2e.fault_kit import metrics, running

import brickwork as bw
from brickwork.client import Client
from brickwork.errors import DeadlineExceeded
from brickwork.server import ServerThread
from brickwork.testing import FakeBrick

pytestmark = pytest.mark.timeout(120)

TIMEOUT_S = 0.5


def _replica(pipeline: bw.Pipeline, stage: str = "model") -> dict:
    return pipeline.stats()["stages"][stage]["replica_info"][0]


async def _back(pipeline: bw.Pipeline, stage: str = "model", within_s: float = 10.0) -> dict:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        info = _replica(pipeline, stage)
        if info["alive"]:
            return info
        await asyncio.sleep(0.02)
    raise AssertionError(f"worker of {stage!r} not back after {within_s} s: {info}")


def test_hung_worker_504_within_timeout_then_replaced_and_later_requests_succeed() -> None:
    node = bw.brick(FakeBrick("model", hang_on=7.0, scale=3.0), worker="process", timeout_s=TIMEOUT_S)

    async def main() -> None:
        async with node.compile() as pipeline:
            assert (await pipeline.ainfer({"x": [1.0]}))["y"].tolist() == [3.0]
            stuck = _replica(pipeline)["pid"]
            t0 = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                await pipeline.ainfer({"x": [7.0]})
            took = time.monotonic() - t0
            assert took <= TIMEOUT_S + 0.1, f"the caller waited {took:.3f} s"
            info = await _back(pipeline)
            assert info["pid"] != stuck and not running(stuck)  # killed, reaped, replaced
            assert info["hangs"] == 1 and info["restarts"] == 1
            values = [float(i) for i in range(20) if i != 7]
            outs = await asyncio.gather(*(pipeline.ainfer({"x": [v]}) for v in values))
            assert [o["y"].tolist() for o in outs] == [[3.0 * v] for v in values]
            stage = pipeline.stats()["stages"]["model"]
            assert stage["hangs"] == 1 and stage["restarts"] == 1 and stage["timeouts"] + stage["errors"][
                "DeadlineExceeded"] >= 1

    asyncio.run(main())


def test_hung_worker_through_the_server_is_a_504_and_counted_in_metrics() -> None:
    node = bw.brick(FakeBrick("model", hang_on=7.0), worker="process", timeout_s=TIMEOUT_S)
    with ServerThread(node.compile(name="hangs")) as server, Client(server.url) as client:
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            client.infer("hangs", {"x": np.array([7.0], np.float32)})
        took = time.monotonic() - t0
        assert took <= TIMEOUT_S + 0.1, f"504 after {took:.3f} s"
        assert err.value.response_status == 504 and "stage 'model'" in str(err.value)
        deadline = time.monotonic() + 10
        while metrics(server.url).get('brickwork_stage_restarts_total{model="hangs",stage="model"}', 0) < 1:
            assert time.monotonic() < deadline, "the hung worker was never replaced"
            time.sleep(0.02)
        out = client.infer("hangs", {"x": np.array([2.0], np.float32)})
        assert out["y"].tolist() == [2.0]
        m = metrics(server.url)
        assert m['brickwork_stage_hangs_total{model="hangs",stage="model"}'] == 1
        assert m['brickwork_stage_live_replicas{model="hangs",stage="model"}'] == 1
        assert m['brickwork_requests_total{model="hangs",code="504"}'] == 1


def test_without_timeout_the_health_timeout_kills_a_hung_worker_and_the_poison_request_fails_clearly() -> None:
    node = bw.brick(FakeBrick("model", hang_on=7.0), worker="process", health_timeout_s=0.3)

    async def main() -> None:
        async with node.compile() as pipeline:
            t0 = time.monotonic()
            with pytest.raises(bw.WorkerCrashed, match=r"hung: its batch ran past 0.3 s \(health_timeout_s\)"):
                await asyncio.wait_for(pipeline.ainfer({"x": [7.0]}), 20)
            # retried once alone on the replacement (it might have been a neighbour's fault),
            # then failed as a poison request: two hangs, not an endless loop
            assert time.monotonic() - t0 < 10
            info = await _back(pipeline)
            assert info["hangs"] == 2
            assert (await pipeline.ainfer({"x": [5.0]}))["y"].tolist() == [5.0]

    asyncio.run(main())


def test_a_slow_batch_within_the_health_timeout_is_not_killed() -> None:
    node = bw.brick(FakeBrick("model", delay_s=0.3), worker="process", health_timeout_s=5.0)

    async def main() -> None:
        async with node.compile() as pipeline:
            pid = _replica(pipeline)["pid"]
            outs = await asyncio.gather(*(pipeline.ainfer({"x": [float(i)]}) for i in range(3)))
            assert [o["y"].tolist() for o in outs] == [[0.0], [1.0], [2.0]]
            info = _replica(pipeline)
            assert info["pid"] == pid and info["hangs"] == 0 and os.getpid() != pid

    asyncio.run(main())


def test_an_idle_worker_that_stops_answering_heartbeats_is_killed_and_replaced() -> None:
    """SIGSTOP freezes an idle worker (no batch in flight, so no batch watchdog runs): its
    heartbeat goes unanswered, and within health_timeout_s + one beat it is killed by pid and
    replaced; the next request is answered by the new worker."""
    import signal

    node = bw.brick(FakeBrick("model"), worker="process", health_timeout_s=0.4)

    async def main() -> None:
        async with node.compile() as pipeline:
            assert (await pipeline.ainfer({"x": [1.0]}))["y"].tolist() == [1.0]
            frozen = _replica(pipeline)["pid"]
            os.kill(frozen, signal.SIGSTOP)
            deadline = time.monotonic() + 10.0  # ~0.6 s expected (timeout + a beat); no request is sent
            while _replica(pipeline)["pid"] == frozen:
                assert time.monotonic() < deadline, "the frozen idle worker was never replaced"
                await asyncio.sleep(0.02)
            stats = pipeline.stats()["stages"]["model"]
            assert stats["hangs"] == 1
            info = await _back(pipeline)
            assert info["pid"] != frozen
            assert (await pipeline.ainfer({"x": [2.0]}))["y"].tolist() == [2.0]
            with pytest.raises(ProcessLookupError):  # the frozen process was killed and reaped
                os.kill(frozen, 0)

    asyncio.run(main())
