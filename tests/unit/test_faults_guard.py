"""Circuit breaker, retry budget and the stage guard, driven by an injectable clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import brickwork as bw
from brickwork.errors import DeadlineExceeded, ModelError, Overloaded, WorkerCrashed
from brickwork.faults import CircuitBreaker, GuardedStage, RetryBudget
from brickwork.options import Breaker, FaultPolicy
from brickwork.testing import FakeBrick


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_recovers_through_half_open():
    clock = Clock()
    b = CircuitBreaker(Breaker(failures=3, reset_after_s=5.0), clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record(False)
    assert b.state == "closed"
    b.record(True)  # a success resets the streak
    for _ in range(3):
        b.record(False)
    assert b.state == "open" and not b.allow() and b.retry_after_s() == 5.0
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.allow() and b.state == "half_open"
    assert not b.allow()  # one probe at a time
    b.record(False)  # the probe failed: open again, timer restarted
    assert b.state == "open" and b.opened_count == 2
    clock.now += 5.0
    assert b.allow()
    b.record(True)
    assert b.state == "closed" and b.allow()


def test_breaker_failure_ratio_over_window():
    b = CircuitBreaker(Breaker(failures=100, failure_ratio=0.5, window=4), clock=Clock())
    for ok in (True, False, True):
        b.record(ok)
    assert b.state == "closed"  # window not full yet
    b.record(False)  # 2 of 4 failed
    assert b.state == "open"


def test_retry_budget_limits_retries_to_a_fraction_of_calls():
    budget = RetryBudget(0.1, min_retries=2)
    granted = 0
    for _ in range(1000):
        budget.deposit()
        if budget.withdraw():
            granted += 1
    assert 100 <= granted <= 103  # 10 % of 1000 calls, plus the small reserve


class Runner:
    """A scripted stage runner (unit test of the guard's logic only)."""

    name = "s"

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    async def submit(self, inputs, deadline):
        self.calls += 1
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if step == "hang":
            await asyncio.sleep(10)
        return {"y": inputs["x"]}

    def stats(self):
        return {}

    def live_replicas(self):
        return 1


X = {"x": np.zeros(1)}


def test_guard_retries_machinery_failures_but_not_model_errors():
    runner = Runner([WorkerCrashed("died"), "ok"])
    guard = GuardedStage(runner, FaultPolicy(retries=2))
    assert asyncio.run(guard.submit(X, None))["y"].tolist() == [0.0]
    assert runner.calls == 2 and guard.retries == 1

    runner = Runner([ModelError("bad input for the model"), "ok"])
    guard = GuardedStage(runner, FaultPolicy(retries=2))
    with pytest.raises(ModelError):
        asyncio.run(guard.submit(X, None))
    assert runner.calls == 1

    runner = Runner([ModelError("flaky"), "ok"])
    assert asyncio.run(GuardedStage(runner, FaultPolicy(retries=1, retry_on="any")).submit(X, None))


def test_guard_retry_budget_stops_hammering_a_sick_stage():
    runner = Runner([WorkerCrashed("down")] * 100)
    guard = GuardedStage(runner, FaultPolicy(retries=3, retry_budget=0.0))
    guard.budget = RetryBudget(0.0, min_retries=1)
    for _ in range(5):
        with pytest.raises(WorkerCrashed):
            asyncio.run(guard.submit(X, None))
    assert guard.retries == 1 and guard.retries_denied == 5 and runner.calls == 6


def test_guard_timeout_is_a_504_and_breaker_opens_then_rejects_fast():
    clock = Clock()
    runner = Runner(["hang", "hang"] + ["ok"] * 3)
    guard = GuardedStage(runner, FaultPolicy(timeout_s=0.01, breaker=Breaker(failures=2, reset_after_s=1.0)),
                         clock=clock)
    for _ in range(2):
        with pytest.raises(DeadlineExceeded, match="timeout_s=0.01"):
            asyncio.run(guard.submit(X, None))
    with pytest.raises(Overloaded, match="circuit breaker of stage 's' is open") as info:
        asyncio.run(guard.submit(X, None))
    assert info.value.retry_after_s == pytest.approx(1.0)
    assert runner.calls == 2 and not guard.available()
    clock.now += 1.0
    assert asyncio.run(guard.submit(X, None))  # the half-open probe succeeds
    assert guard.breaker.state == "closed" and guard.stats()["breaker"]["opened"] == 1


def test_breaker_then_fallback_then_recovery_through_a_pipeline():
    primary = FakeBrick("primary", crash_on=1.0, blocking=False)
    backup = FakeBrick("backup", scale=-1.0, blocking=False)
    graph = bw.brick(primary, breaker=Breaker(failures=2, reset_after_s=0.2)).fallback(bw.brick(backup))
    with graph.compile() as pipe:
        answers = [pipe.infer({"x": [1.0]}).rungs["primary"] for _ in range(4)]
        assert answers == ["backup"] * 4
        assert primary.calls == 2  # after two crashes the open circuit keeps calls away
        stats = pipe.stats()
        assert stats["stages"]["primary"]["breaker"]["state"] == "open"
        assert stats["fallbacks"]["primary"] == {"backup": 4}
        assert pipe.ready()  # the fallback can answer, so the pipeline is ready
        pipe.reset_stats()
        assert pipe.stats()["fallbacks"]["primary"] == {}  # rung counts start afresh too
        primary.config["crash_on"] = None  # the model recovers
        import time

        time.sleep(0.25)
        out = pipe.infer({"x": [2.0]})
    assert out.rungs == {"primary": "primary"} and out["y"].tolist() == [2.0]


def test_readiness_is_honest_about_uncovered_stages():
    lone = FakeBrick("lone", crash_on=1.0, blocking=False)
    with bw.brick(lone, breaker=Breaker(failures=1, reset_after_s=60)).compile() as pipe:
        assert pipe.ready()
        with pytest.raises(WorkerCrashed):
            pipe.infer({"x": [1.0]})
        assert pipe.unready() == ["stage 'lone' has no live replica or its circuit is open"]


def test_backoff_is_capped_exponential_with_full_jitter():
    from brickwork.faults import Backoff

    b = Backoff(base_s=0.05, max_s=2.0)
    assert [b.ceiling_s(n) for n in range(8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert b.delay_s(3, rand=lambda: 0.0) == 0.0 and b.delay_s(3, rand=lambda: 0.5) == 0.2
    assert b.ceiling_s(10_000) == 2.0  # no overflow however long it has failed
    assert Backoff(0.05, 10.0, jitter=False).delay_s(2, rand=lambda: 0.0) == 0.2


def test_guard_waits_a_jittered_backoff_before_each_retry():
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    runner = Runner([WorkerCrashed("a"), WorkerCrashed("b"), WorkerCrashed("c"), "ok"])
    guard = GuardedStage(runner, FaultPolicy(retries=3, retry_backoff_s=0.1, retry_backoff_max_s=0.3),
                         sleep=sleep, rand=lambda: 0.5)
    assert asyncio.run(guard.submit(X, None))
    assert waits == [0.05, 0.1, 0.15] and runner.calls == 4  # half of 0.1, 0.2, 0.3 (capped)
    assert guard.stats()["retry_backoff_s"] == pytest.approx(0.3)

    runner = Runner([WorkerCrashed("a"), "ok"])
    waits.clear()
    guard = GuardedStage(runner, FaultPolicy(retries=1, retry_backoff_s=None), sleep=sleep)
    assert asyncio.run(guard.submit(X, None)) and waits == []  # None: retry at once


def test_guard_does_not_retry_when_the_backoff_would_pass_the_deadline():
    import time

    async def sleep(s: float) -> None:
        raise AssertionError("no wait expected")

    runner = Runner([WorkerCrashed("a"), "ok"])
    guard = GuardedStage(runner, FaultPolicy(retries=2, retry_backoff_s=5.0), sleep=sleep, rand=lambda: 1.0)
    with pytest.raises(WorkerCrashed):
        asyncio.run(guard.submit(X, time.monotonic() + 1.0))  # 5 s wait > 1 s left
    assert runner.calls == 1 and guard.retries == 0
