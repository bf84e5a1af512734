"""A remote brick whose upstream server goes away: the breaker opens, the fallback answers (and
says so), the pipeline stays ready; when the upstream returns on the same port the half-open
probe closes the breaker and the primary answers again. Loopback only."""

from __future__ import annotations

import time
from typing import Annotated, TypedDict

import numpy as np
import pytest
from tests.e2e.fault_kit import metrics

import brickwork as bw
from brickwork.client import Client
from brickwork.server import ServerThread

pytestmark = pytest.mark.timeout(120)

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]
RESET_AFTER_S = 0.3


class Calc(TypedDict):
    y: Vec
    total: Annotated[np.ndarray, bw.Tensor("FP32", ())]


def calc(x: Vec) -> Calc:
    return {"y": x * 2, "total": x.sum(axis=1)}


def rules(x: Vec) -> Calc:
    """The cheap stand-in: same ports, a recognisably different answer (y = x)."""
    return {"y": x.copy(), "total": x.sum(axis=1)}


def upstream(port: int = 0) -> ServerThread:
    return ServerThread(bw.function(calc, batch=True).compile(name="calc"), port=port).start()


def test_upstream_down_breaker_opens_fallback_answers_upstream_back_breaker_closes() -> None:
    up = upstream()
    port = up.port
    remote = bw.http(up.url, model="calc", name="remote", call_timeout_s=1.0,
                     breaker=bw.Breaker(failures=2, reset_after_s=RESET_AFTER_S))
    graph = remote.fallback(bw.function(rules, batch=True, name="rules"))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    try:
        with ServerThread(graph.compile(name="front")) as front, Client(front.url) as client:
            out = client.infer("front", {"x": x})
            assert out.rungs == {"remote": "remote"}
            np.testing.assert_array_equal(out["y"], x * 2)

            up.stop()  # the upstream goes away
            answers = [client.infer("front", {"x": x}) for _ in range(6)]
            assert all(a.rungs == {"remote": "rules"} for a in answers)  # labelled, never an error
            for a in answers:
                np.testing.assert_array_equal(a["y"], x)
            stats = metrics(front.url)
            assert stats['brickwork_stage_breaker_state{model="front",stage="remote",state="open"}'] == 1
            assert stats['brickwork_stage_breaker_opened_total{model="front",stage="remote"}'] == 1
            # two failed calls opened it; the other four never reached the dead upstream
            assert stats['brickwork_stage_rejected_open_circuit_total{model="front",stage="remote"}'] >= 3
            assert stats['brickwork_fallback_answers_total{model="front",ladder="remote",rung="rules"}'] == 6
            assert client.server_ready() and client.model_ready("front")  # degraded, but a rung can answer: honest readiness says ready

            up = upstream(port)  # back, on the same address
            time.sleep(RESET_AFTER_S + 0.05)
            out = client.infer("front", {"x": x})  # the half-open probe goes through and succeeds
            assert out.rungs == {"remote": "remote"}
            np.testing.assert_array_equal(out["y"], x * 2)
            stats = metrics(front.url)
            assert stats['brickwork_stage_breaker_state{model="front",stage="remote",state="closed"}'] == 1
            assert stats['brickwork_fallback_answers_total{model="front",ladder="remote",rung="remote"}'] == 2
    finally:
        up.stop()


def test_upstream_down_without_a_fallback_is_a_fast_503_and_the_model_is_unready() -> None:
    up = upstream()
    remote = bw.http(up.url, model="calc", name="remote", call_timeout_s=1.0,
                     breaker=bw.Breaker(failures=1, reset_after_s=60.0))
    x = np.zeros((1, 4), np.float32)
    try:
        with ServerThread(remote.compile(name="lone")) as front, Client(front.url) as client:
            client.infer("lone", {"x": x})
            up.stop()
            with pytest.raises(bw.UpstreamError):  # the failure itself: 502 from the upstream edge
                client.infer("lone", {"x": x})
            t0 = time.monotonic()
            with pytest.raises(bw.Overloaded) as err:  # then the open circuit: 503, fast
                client.infer("lone", {"x": x})
            assert time.monotonic() - t0 < 0.5
            assert err.value.response_status == 503 and "circuit breaker of stage 'remote' is open" in str(err.value)
            assert err.value.retry_after_s >= 1
            assert not client.server_ready() and not client.model_ready("lone")
    finally:
        up.stop()
