"""Hedged requests: the logic on a scripted runner, then a real two-replica stage."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

import brickwork as bw
from brickwork.errors import ConfigError, UpstreamError
from brickwork.faults import HedgeBudget, HedgedStage, LatencyWindow


class Scripted:
    """A runner whose n-th call sleeps delays[n] (then answers n, or raises errors[n])."""

    name = "s"

    def __init__(self, delays: list[float], errors: dict[int, Exception] | None = None) -> None:
        self.delays = delays
        self.errors = errors or {}
        self.calls = 0
        self.cancelled: list[int] = []

    async def submit(self, inputs, deadline):
        n = self.calls
        self.calls += 1
        try:
            await asyncio.sleep(self.delays[n] if n < len(self.delays) else 0.0)
        except asyncio.CancelledError:
            self.cancelled.append(n)
            raise
        if n in self.errors:
            raise self.errors[n]
        return {"n": np.array([n])}

    def stats(self):
        return {}

    def live_replicas(self):
        return 2


def run(coro):
    return asyncio.run(coro)


def test_a_fast_call_is_not_hedged():
    inner = Scripted([0.0])
    stage = HedgedStage(inner, after_s=0.5)
    assert run(stage.submit({}, None))["n"].tolist() == [0]
    assert (inner.calls, stage.hedges) == (1, 0)


def test_a_slow_call_is_hedged_the_first_answer_wins_and_the_other_is_cancelled():
    inner = Scripted([5.0, 0.0])

    async def go():
        stage = HedgedStage(inner, after_s=0.05)
        t0 = time.monotonic()
        out = await stage.submit({}, None)
        await asyncio.sleep(0)  # let the cancellation land
        return stage, out, time.monotonic() - t0

    stage, out, took = run(go())
    assert out["n"].tolist() == [1] and took < 2.0
    assert (stage.hedges, stage.hedge_wins, inner.cancelled) == (1, 1, [0])


def test_a_failed_copy_waits_for_the_other():
    inner = Scripted([0.2, 0.0], errors={1: UpstreamError("replica b is down", 503)})
    stage = HedgedStage(inner, after_s=0.05)
    assert run(stage.submit({}, None))["n"].tolist() == [0]
    inner = Scripted([0.2, 0.0], errors={0: UpstreamError("a", 503), 1: UpstreamError("b", 503)})
    with pytest.raises(UpstreamError):
        run(HedgedStage(inner, after_s=0.05).submit({}, None))


def test_the_budget_caps_extra_calls():
    budget = HedgeBudget(0.1, reserve=2.0)
    assert [budget.withdraw() for _ in range(3)] == [True, True, False]
    for _ in range(10):
        budget.deposit()
    assert budget.withdraw() and not budget.withdraw()  # 10 calls earn one hedge

    inner = Scripted([1.0] * 5 + [0.0] * 5)
    stage = HedgedStage(inner, after_s=0.01, budget=0.0)

    async def go():
        return await asyncio.gather(*(stage.submit({}, None) for _ in range(4)))

    run(go())
    assert stage.hedges == 2 and stage.hedges_denied == 2  # the reserve, then nothing


def test_auto_hedges_at_the_measured_p95_once_measured():
    window = LatencyWindow(min_samples=20, every=1)
    assert window.p95() is None
    for i in range(100):
        window.add(0.001 * (i + 1))
    assert window.p95() == pytest.approx(0.095, abs=0.002)
    stage = HedgedStage(Scripted([0.0] * 30), after_s="auto")
    assert stage.delay_s() is None

    async def go():
        for _ in range(25):
            await stage.submit({}, None)

    run(go())
    assert stage.delay_s() is not None and stage.hedges == 0


def stall_on_replica_zero(x: float) -> float:
    """Replica 0's thread stalls (2 s) on x == 1; every other call answers at once."""
    if x == 1 and threading.current_thread().name.startswith("bw-stall_on_replica_zero-0"):
        time.sleep(2.0)
    return x


def test_a_two_replica_stage_hedges_to_the_other_replica():
    node = bw.function(stall_on_replica_zero, outputs="y").with_options(
        replicas=2, worker="thread", hedge_after_s=0.05)
    with node.compile() as pipe:
        t0 = time.perf_counter()
        out = pipe.infer({"x": [1.0]})
        took = time.perf_counter() - t0
        stats = pipe.stats()["stages"]["stall_on_replica_zero"]
    assert out["y"].tolist() == [1.0]
    assert took < 1.0, took  # not the 2 s stall: the copy on replica 1 answered
    assert stats["hedges"] == 1 and stats["hedge_wins"] == 1
    from brickwork.server._metrics import _Families, _render_stages

    fam = _Families()
    _render_stages(fam, [{"m": {"stages": {"stall_on_replica_zero": stats}}}])
    text = fam.text().decode()
    assert 'brickwork_stage_hedges_total{model="m",stage="stall_on_replica_zero"} 1' in text


def test_policy_validation_and_yaml_keys():
    with pytest.raises(ConfigError, match="hedge_after_s must be a positive number"):
        bw.FaultPolicy(hedge_after_s=0)
    with pytest.raises(ConfigError, match="hedge_budget must be in"):
        bw.FaultPolicy(hedge_budget=2)
    assert bw.FaultPolicy(hedge_after_s="auto").hedge_after_s == "auto"
    from brickwork.graph import parse_pipeline

    f = parse_pipeline("bricks:\n  f: {fake: true, replicas: 2, hedge_after_s: auto, hedge_budget: 0.05}\ngraph: f\n")
    node = f.graph.root
    assert isinstance(node, bw.Node)
    assert (node.options.policy.hedge_after_s, node.options.policy.hedge_budget) == ("auto", 0.05)
