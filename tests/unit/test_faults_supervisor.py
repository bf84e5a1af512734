"""Supervision logic with a scripted worker: respawn with backoff until it works, for as long
as it takes, fast-fail signal after the first failed attempt, the watchdog and heartbeats."""

from __future__ import annotations

import asyncio

import pytest

from brickwork.faults import Backoff, Supervisor


class Worker:
    label = "stage 's' worker 0"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.spawns = 0
        self.killed: list[str] = []
        self.changes: list[bool] = []
        self.sup: Supervisor | None = None
        self.pings = 0
        self.holding = False

    async def spawn(self) -> None:
        self.spawns += 1
        if self.spawns <= self.failures:
            raise RuntimeError(f"no file descriptors (attempt {self.spawns})")

    def kill(self, reason: str) -> None:
        self.killed.append(reason)
        assert self.sup is not None
        self.sup.down()

    def ping(self) -> bool:
        self.pings += 1
        return True

    def busy(self) -> bool:
        return self.holding

    def changed(self) -> None:
        assert self.sup is not None
        self.changes.append(self.sup.restarting)


def test_respawn_keeps_trying_past_three_failures_and_logs_each(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker(failures=6)
    sup = worker.sup = Supervisor(worker, hang_after_s=None, hang_setting="timeout_s", health_timeout_s=None,
                                  backoff=Backoff(0.001, 0.004, jitter=False))

    async def main() -> None:
        sup.up()
        sup.down()
        assert sup.restarting and sup.recovering and sup.down_since is not None
        for _ in range(500):
            if not sup.recovering:
                break
            await asyncio.sleep(0.005)

    with caplog.at_level("WARNING", logger="brickwork.faults"):
        asyncio.run(main())
    assert worker.spawns == 7 and sup.restarts == 1 and sup.spawn_failures == 6
    assert sup.down_since is None and sup.last_downtime_s is not None
    # the stage hears once that the worker is not coming back soon, then that it is back
    assert worker.changes == [False, False]
    assert sum("could not be respawned" in r.getMessage() for r in caplog.records) == 6


def test_watchdog_kills_a_batch_past_hang_after_s_and_heartbeat_pings_when_idle() -> None:
    worker = Worker(failures=0)
    sup = worker.sup = Supervisor(worker, hang_after_s=0.05, hang_setting="timeout_s", health_timeout_s=0.1,
                                  backoff=Backoff(0.001, 0.001, jitter=False))

    async def main() -> None:
        sup.up()
        worker.holding = True
        sup.watch()
        await asyncio.sleep(0.2)
        assert worker.killed and "ran past 0.05 s (timeout_s)" in worker.killed[0]
        worker.holding = False
        await asyncio.sleep(0.3)  # respawned; idle now: pinged, never answered -> killed again
        sup.stop()

    asyncio.run(main())
    assert worker.pings >= 1 and sup.hangs >= 2
    assert any("heartbeats" in k for k in worker.killed)
