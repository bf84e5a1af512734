"""Supervision of one worker process: the watchdog on the batch it computes, heartbeats while
it is idle, kill by pid, reaping off the event loop, and respawning for as long as the server
runs.

The worker itself (its pipe, its arenas, its batches) belongs to the engine; supervision sees
it through the small :class:`Supervised` protocol, so this package never imports the engine.

* **Watchdog**: :meth:`Supervisor.watch` times the batch the worker starts computing; still
  running after ``hang_after_s``, the worker is stuck and is killed (``Supervised.kill``).
* **Heartbeat**: while the worker holds no batch it is pinged every ``min(1 s,
  health_timeout_s / 2)``; a ping left unanswered for ``health_timeout_s`` kills it too.
* **Respawn**: after a death, a new worker is spawned after a capped exponential backoff
  (:data:`RESPAWN_BACKOFF`: 0.05 s, doubling, at most 10 s between attempts), attempt after
  attempt for as long as the server runs; every failure is logged. ``restarting`` is true only
  until the first attempt fails: from then on the stage stops holding requests for the worker
  and answers 503 at once, while supervision keeps trying in the background. ``down_since``
  feeds liveness (``max_down_s``).
* **Reaping** (:func:`kill_and_reap`): SIGKILL by pid, then ``join`` on a daemon thread, never
  on the event loop: a worker stuck in the kernel must not stall every pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Protocol

from ._backoff import Backoff

__all__ = ["RESPAWN_BACKOFF", "Process", "Supervised", "SupervisedFigures", "Supervisor", "kill_and_reap"]

log = logging.getLogger("brickwork.faults")

RESPAWN_BACKOFF = Backoff(base_s=0.05, max_s=10.0, jitter=False)


class Process(Protocol):
    """The part of ``multiprocessing.Process`` reaping uses."""

    pid: int | None

    def is_alive(self) -> bool: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class Supervised(Protocol):
    """A worker process as supervision sees it."""

    label: str  # "stage 'x' worker 0", for messages and logs

    async def spawn(self) -> None:
        """Start a fresh process and wait until it is ready; raise when it cannot start."""
        ...

    def kill(self, reason: str) -> None:
        """Kill the current process by pid (SIGKILL) and handle it as dead; ``reason`` says why."""
        ...

    def ping(self) -> bool:
        """Send a heartbeat; False when the pipe is broken (the worker is then handled as dead)."""
        ...

    def busy(self) -> bool:
        """Does the worker hold a batch (the watchdog times it, no heartbeat needed)?"""
        ...

    def changed(self) -> None:
        """The worker's availability changed (tell the stage, so it dispatches or fails fast)."""
        ...


def _reap(proc: Process) -> None:
    try:
        proc.join()
    except Exception:  # pragma: no cover - a process object closed under us
        pass


def kill_and_reap(proc: Process) -> None:
    """SIGKILL ``proc`` by its pid when it still runs, and reap it on a daemon thread."""
    try:
        if proc.is_alive():
            proc.kill()
    except (OSError, ValueError):  # already gone or already closed
        return
    threading.Thread(target=_reap, args=(proc,), name=f"bw-reap-{proc.pid}", daemon=True).start()


class Supervisor:
    """Watchdog, heartbeat and respawn of one :class:`Supervised` worker."""

    def __init__(self, target: Supervised, *, hang_after_s: float | None, hang_setting: str,
                 health_timeout_s: float | None, backoff: Backoff = RESPAWN_BACKOFF) -> None:
        self.target = target
        self.hang_after_s = hang_after_s
        self.hang_setting = hang_setting  # the option that set hang_after_s, for the message
        self.health_timeout_s = health_timeout_s
        self.heartbeat_s = None if health_timeout_s is None else min(1.0, health_timeout_s / 2)
        self.backoff = backoff
        self.hangs = 0
        self.deaths = 0
        self.restarts = 0
        self.spawn_failures = 0
        self.down_since: float | None = None  # monotonic time of the last death, until back
        self.last_downtime_s: float | None = None
        self.restarting = False  # a respawn is due and none has failed yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._ping_sent: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def recovering(self) -> bool:
        """A respawn loop is running (the worker is down and supervision is on it)."""
        return self._task is not None

    # -- lifecycle ----------------------------------------------------------------------
    def up(self) -> None:
        """The worker (re)started and is ready: heartbeats begin, downtime is recorded."""
        self._loop = asyncio.get_running_loop()
        self._ping_sent = None
        if self.down_since is not None:
            self.last_downtime_s = time.monotonic() - self.down_since
            self.down_since = None
        self._arm_heartbeat()

    def down(self) -> None:
        """The worker died (or was killed): stop timing it and respawn it."""
        self.disarm()
        self._stop_heartbeat()
        self.deaths += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
        if not self._stopped and self._task is None and self._loop is not None:
            self.restarting = True
            self._task = self._loop.create_task(self._respawn())

    def stop(self) -> None:
        self._stopped = True
        self.disarm()
        self._stop_heartbeat()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    async def _respawn(self) -> None:
        attempt = 0
        try:
            while not self._stopped:
                await asyncio.sleep(self.backoff.delay_s(attempt))
                if self._stopped:
                    return
                try:
                    await self.target.spawn()
                except Exception as exc:
                    self.spawn_failures += 1
                    attempt += 1
                    log.warning("%s could not be respawned (attempt %d; next attempt in %.2g s): %s: %s",
                                self.target.label, attempt, self.backoff.delay_s(attempt),
                                type(exc).__name__, exc)
                    if self.restarting:  # not coming back soon: let the stage answer 503 at once
                        self.restarting = False
                        self.target.changed()
                    continue
                self.restarts += 1
                if attempt:
                    log.warning("%s respawned after %d failed attempt(s)", self.target.label, attempt)
                else:
                    log.info("%s replaced (restart %d)", self.target.label, self.restarts)
                self.up()
                return
        finally:
            self.restarting = False
            if self._task is asyncio.current_task():
                self._task = None
            if not self._stopped:
                self.target.changed()

    # -- the watchdog -------------------------------------------------------------------
    def watch(self) -> None:
        """Time the batch the worker starts computing now."""
        self.disarm()
        if self.hang_after_s is not None and self._loop is not None:
            self._watchdog = self._loop.call_later(self.hang_after_s, self._on_hang)

    def disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _on_hang(self) -> None:
        self._watchdog = None
        self.hangs += 1
        self.target.kill(f"hung: its batch ran past {self.hang_after_s:g} s ({self.hang_setting}), "
                         "so it was killed and is being replaced")

    # -- heartbeats ---------------------------------------------------------------------
    def answered(self) -> None:
        """The worker sent something: its loop is answering."""
        self._ping_sent = None

    def _arm_heartbeat(self) -> None:
        if self.heartbeat_s is not None and self._loop is not None and not self._stopped:
            self._beat = self._loop.call_later(self.heartbeat_s, self._heartbeat)

    def _stop_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    def _heartbeat(self) -> None:
        self._beat = None
        if self.target.busy():  # the watchdog times it
            self._ping_sent = None
        elif self._ping_sent is None:
            if not self.target.ping():
                return  # the pipe broke: the worker is handled as dead
            self._ping_sent = time.monotonic()
        elif self.health_timeout_s is not None and time.monotonic() - self._ping_sent > self.health_timeout_s:
            self.hangs += 1
            self.target.kill(f"stopped answering heartbeats for {self.health_timeout_s:g} s while idle "
                             "(health_timeout_s), so it was killed and is being replaced")
            return
        self._arm_heartbeat()

    def info(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "hangs": self.hangs, "deaths": self.deaths,
                "spawn_failures": self.spawn_failures, "last_downtime_s": self.last_downtime_s}


class SupervisedFigures:
    """What supervision keeps about a worker, as its replica shows it to the stage (dispatch,
    stats) and to liveness: a mixin for replicas that own a ``supervisor``."""

    supervisor: Supervisor

    @property
    def restarting(self) -> bool:
        """Dead, and a replacement is expected soon (the stage holds its requests for it)."""
        return self.supervisor.restarting

    @property
    def down_since(self) -> float | None:
        return self.supervisor.down_since

    @property
    def restarts(self) -> int:
        return self.supervisor.restarts

    @property
    def hangs(self) -> int:
        return self.supervisor.hangs

    @property
    def deaths(self) -> int:
        return self.supervisor.deaths
