"""The user-facing handle on a compiled graph: ``infer``, ``ainfer``, ``stats``, ``close``.

A pipeline binds to one event loop. Started from inside a running loop (``await
pipeline.start()`` or the first ``await pipeline.ainfer()``) it uses that loop, so the server's
hot path has no thread hop. Called synchronously (``pipeline.infer``) it starts a private loop
on a daemon thread, so any number of threads can call it concurrently and still be batched
together.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import Any

from . import faults
from .engine import Backend, Executor, InferResult, LocalBackend, bottleneck, stream_plan
from .errors import ConfigError
from .plan import Plan

__all__ = ["Pipeline"]


def _guard(runner: Any, plan: Plan) -> Any:
    """Apply the stage's fault policy (timeout, retries, breaker, hedging) around the backend's runner;
    a stage whose policy adds nothing runs bare (nothing on the hot path)."""
    return faults.guard(runner, plan.stages[runner.name].policy)


def _backend(name: str | Backend) -> Backend:
    if not isinstance(name, str):
        return name
    if name == "local":
        return LocalBackend()
    if name == "process":
        from .engine import ProcessBackend

        return ProcessBackend()
    if name == "ray":  # a private local Ray instance; RayBackend(address=...) joins a cluster
        from .cluster import RayBackend

        return RayBackend()
    raise ConfigError(f"unknown backend {name!r}; use 'local', 'process' or 'ray'")


async def _next(agen: AsyncIterator[Any]) -> tuple[bool, Any]:
    try:
        return False, await agen.__anext__()
    except StopAsyncIteration:
        return True, None


class Pipeline:
    def __init__(self, plan: Plan, *, backend: str | Backend = "local") -> None:
        self.plan = plan
        # what the pipeline and its tensors are, for people and agents (the YAML's
        # ``description`` and ``descriptions``): the tool schemas of brickwork mcp and /v1/tools
        self.description: str | None = None
        self.descriptions: dict[str, str] = {}
        self._backend = _backend(backend)
        check = getattr(self._backend, "check", None)
        if callable(check):  # refuse what this backend cannot run now, not at start
            check(plan)
        self._executor: Executor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._loop_thread = 0  # the thread whose running loop started the pipeline
        self._starting: asyncio.Future[None] | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Load every brick and start the stages on the running loop (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError(f"pipeline {self.name!r} already runs on another event loop")
        if self._executor is not None:
            return
        if self._starting is None:
            self._loop = loop
            self._loop_thread = threading.get_ident()
            self._starting = loop.create_future()
            try:
                runners = await self._backend.start(self.plan)
                stages = {name: _guard(runner, self.plan) for name, runner in runners.items()}
                self._executor = Executor(self.plan, stages)
                self._starting.set_result(None)
            except BaseException as exc:
                self._starting.set_exception(exc)
                self._starting.exception()  # mark retrieved
                self._starting, self._loop = None, None
                raise
        else:
            await asyncio.shield(self._starting)

    def _ensure_thread(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=f"bw-{self.name}", daemon=True)
                thread.start()
                self._thread = thread
                asyncio.run_coroutine_threadsafe(self._start_on(loop), loop).result()
            assert self._loop is not None
            return self._loop

    async def _start_on(self, loop: asyncio.AbstractEventLoop) -> None:
        await self.start()

    async def aclose(self) -> None:
        if self._executor is not None or self._starting is not None:
            await self._backend.stop()
        self._executor, self._starting = None, None

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        if thread is not None:
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
        elif loop.is_running():
            raise RuntimeError("pipeline runs on your event loop: use 'await pipeline.aclose()'")
        self._loop, self._thread = None, None

    def __enter__(self) -> Pipeline:
        """``with pipeline:`` loads every brick now (on a private loop thread) and closes
        the pipeline on exit."""
        self._ensure_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Pipeline:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- inference ------------------------------------------------------------------
    async def ainfer(self, inputs: Mapping[str, Any], *, timeout_s: float | None = None) -> InferResult:
        """Run one request (a batch of N items along axis 0). ``timeout_s`` becomes the
        request's deadline through the whole graph."""
        executor = self.local_executor()
        if executor is not None:  # the hot path
            return await executor.run(executor.validate(inputs), timeout_s=timeout_s)
        loop = asyncio.get_running_loop()
        if self._loop is None:
            await self.start()
        if loop is self._loop:
            if self._executor is None:
                await self.start()
            assert self._executor is not None
            return await self._executor.run(self._executor.validate(inputs), timeout_s=timeout_s)
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(self.ainfer(inputs, timeout_s=timeout_s), self._loop)
        return await asyncio.wrap_future(fut)

    def local_executor(self) -> Executor | None:
        """The running executor when the caller is on this pipeline's own loop, else None: the
        server's hot path starts a request through it (``Executor.start``) with no coroutine
        in between."""
        executor = self._executor
        loop = self._loop
        # the pipeline's loop is running on the caller's thread: the caller runs on that loop
        # (a thread runs one loop at a time). Cheaper than asyncio.get_running_loop(), which
        # costs a getpid() system call on Python 3.11.
        if (executor is not None and loop is not None and threading.get_ident() == self._loop_thread
                and loop.is_running()):
            return executor
        return None

    def infer(self, inputs: Mapping[str, Any], *, timeout_s: float | None = None) -> InferResult:
        """Synchronous ``ainfer``; safe to call from many threads at once."""
        loop = self._ensure_thread()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("infer() called on the pipeline's own event loop; use 'await ainfer()'")
        return asyncio.run_coroutine_threadsafe(self.ainfer(inputs, timeout_s=timeout_s), loop).result()

    # -- streaming (a separate path: ainfer above stays as it is) -----------------------
    async def astream(self, inputs: Mapping[str, Any], *, parameters: Mapping[str, Any] | None = None,
                      timeout_s: float | None = None) -> AsyncGenerator[InferResult, None]:
        """Run one request and yield its outputs chunk by chunk as the pipeline's streaming
        stage produces them (one chunk: the whole answer, when no stage streams).
        ``parameters`` go to the streaming brick (an llm brick reads ``max_tokens``,
        ``temperature``, ``top_p``, ``seed``, ``stop``). Stopping early (``break``, or
        ``aclose()``) stops the generation and frees its slot."""
        loop = asyncio.get_running_loop()
        if self._loop is None or (loop is self._loop and self._executor is None):
            await self.start()
        if loop is self._loop:
            assert self._executor is not None
            chunks = stream_plan(self._executor, self._executor.validate(inputs),
                                 parameters=parameters, timeout_s=timeout_s)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:  # an async generator left early is not closed by ``async for``: close it
                await chunks.aclose()
            return
        assert self._loop is not None
        agen = self.astream(inputs, parameters=parameters, timeout_s=timeout_s)
        try:
            while True:
                fut = asyncio.run_coroutine_threadsafe(_next(agen), self._loop)
                done, chunk = await asyncio.wrap_future(fut)
                if done:
                    return
                yield chunk
        finally:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(agen.aclose(), self._loop))

    def stream(self, inputs: Mapping[str, Any], *, parameters: Mapping[str, Any] | None = None,
               timeout_s: float | None = None) -> Iterator[InferResult]:
        """Synchronous ``astream``: a generator of chunks; closing it (or ``break``) stops the
        generation."""
        loop = self._ensure_thread()
        agen = self.astream(inputs, parameters=parameters, timeout_s=timeout_s)
        try:
            while True:
                done, chunk = asyncio.run_coroutine_threadsafe(_next(agen), loop).result()
                if done:
                    return
                yield chunk
        finally:
            asyncio.run_coroutine_threadsafe(agen.aclose(), loop).result()

    def stats(self) -> dict[str, Any]:
        """Per stage: the backend's figures (queue/compute time, batch sizes, …) plus the fault
        policy's (retries, timeouts, breaker state); per fallback ladder: answers per rung."""
        if self._executor is None:
            return {"stages": {}, "bottleneck": None, "fallbacks": {}}
        ex = self._executor
        stages = {n: dict(s.stats()) for n, s in ex.stages.items()}
        out = {"stages": stages, "bottleneck": bottleneck(stages),
               "fallbacks": {k: dict(v) for k, v in ex.rung_counts.items()}}
        if ex.deadline_votes.counts:  # deadline ensembles: answers, stragglers, members
            out["ensembles"] = {k: dict(v) for k, v in ex.deadline_votes.counts.items()}
        streams = {}
        for n, stage in self.plan.stages.items():
            figures = getattr(stage.brick, "stream_stats", None)
            if callable(figures):
                streams[n] = dict(figures())
        if streams:  # streaming bricks' own figures (an llm brick: active sequences, KV tokens)
            out["streams"] = streams
        return out

    def reset_stats(self) -> None:
        """Measure afresh from now (after a warm-up, before a benchmark): stage figures and
        the answers counted per fallback rung."""
        ex = self._executor
        if ex is None:
            return
        for counts in ex.rung_counts.values():
            counts.clear()
        ex.deadline_votes.reset()
        for runner in ex.stages.values():
            runner = getattr(runner, "inner", runner)
            reset = getattr(runner, "reset_stats", None)
            if reset is not None:
                reset()

    @property
    def started(self) -> bool:
        return self._executor is not None

    def unready(self) -> list[str]:
        """Why the pipeline cannot answer now; empty when it is ready. Not started = unready."""
        if self._executor is None:
            return [f"pipeline {self.name!r} is not started"]
        return self._executor.unready()

    def ready(self) -> bool:
        return not self.unready()

    def unlive(self) -> list[str]:
        """Why this process should be restarted (empty: it is live): a stage that has had no
        live worker for longer than its policy's ``max_down_s`` while supervision kept failing
        to respawn it. A pipeline not started yet is live (it is starting, not stuck)."""
        ex = self._executor
        if ex is None:
            return []
        return faults.unlive(self.plan, lambda name: getattr(getattr(ex.stages[name], "inner", ex.stages[name]),
                                                             "replicas", ()))

    def release(self) -> None:
        """Unload every brick this process loaded outside a start (``compile()`` loads some to
        read their signatures: an ONNX Runtime session, say), so that no framework runtime
        holds threads here. The server calls it before it forks its workers: a session
        inherited through ``fork()`` deadlocks when the child closes it (its threads stayed in
        the parent). Bricks load again in ``start()``. Refused once started."""
        if self._executor is not None or self._starting is not None:
            raise RuntimeError(f"pipeline {self.name!r} is running; release() is for before start()")
        for stage in self.plan.stages.values():
            stage.brick.close()
        import gc

        gc.collect()  # sessions are freed (and their threads joined) now, not at some later GC

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r} {self.plan.signature}>"
