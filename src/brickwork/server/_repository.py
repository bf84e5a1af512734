"""Model lifecycle without restarts: Triton's model repository extension and hot reload.

    POST /v2/repository/index                       every model, loaded or not: name, version,
                                                    state (READY | UNAVAILABLE), reason
    POST /v2/repository/models/{name}/load          (re)load: compile the model's pipeline file
                                                    afresh, start and warm it beside the old,
                                                    switch traffic, drain and close the old
    POST /v2/repository/models/{name}/unload        stop answering for it; drain and close

A **reload** never drops a request: the new pipeline is compiled and started (its bricks loaded
and warmed) while the old one keeps answering; then ``app.models[name]`` is replaced in one
assignment (a request holds the model it looked up, so requests in flight finish on the old
one and every request after the switch goes to the new one); the old one is closed once its
in-flight count is zero (or after ``drain_timeout_s``). A file that fails to parse, compile or
start leaves the old model serving; the answer (400) says why. Each successful load is a new
version ("1", "2", …), which ``/v2/models/{name}/versions/{v}`` and the metadata name.

Only pipelines served from a file (``brickwork serve FILE``) can be reloaded from it; the others
can be unloaded and loaded again (the same pipeline restarted). ``watch()`` polls the files'
modification times and reloads on a change (``brickwork serve --reload``). With ``--workers N``
each worker process reloads its own copy: use ``--reload``, not the endpoint, which reaches one
worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BrickworkError
from ._errors import JSON, Reply, plain_error

if TYPE_CHECKING:
    from ._app import App, Model

__all__ = ["Repository"]

log = logging.getLogger("brickwork.server")


class Repository:
    def __init__(self, app: App, model: Callable[..., Model]) -> None:
        self.app = app
        self._model = model  # the App's Model class (passed in: this module does not import _app)
        self.unloaded: dict[str, Model] = {}
        self.reasons: dict[str, str] = {}  # model → why its last load failed (it still serves the old)
        self._locks: dict[str, asyncio.Lock] = {}
        self._mtimes: dict[str, float] = {}
        self._draining: set[asyncio.Task[None]] = set()

    # -- routes --------------------------------------------------------------------------
    async def handle(self, method: str, path: str, body: bytes) -> Reply:
        if method != "POST":
            return plain_error(405, f"{path} takes POST", (b"allow", b"POST"))
        if path == "/v2/repository/index":
            return 200, [JSON], orjson.dumps(self.index())
        parts = path[len("/v2/repository/models/"):].split("/")
        if not path.startswith("/v2/repository/models/") or len(parts) != 2 or parts[1] not in ("load", "unload"):
            return plain_error(404, f"no endpoint POST {path}; see /v2/repository/index, "
                                    "/v2/repository/models/{name}/load and /unload")
        name, action = parts
        if name not in self.app.models and name not in self.unloaded:
            return plain_error(404, f"unknown model {name!r}; the repository has {sorted(self.names())}")
        if action == "unload":
            await self.unload(name)
            return 200, [JSON], b"{}"
        try:
            version = await self.load(name)
        except BrickworkError as exc:
            return plain_error(400, f"model {name!r} was not reloaded, version "
                                    f"{self._version_of(name)} still serves: {exc}")
        return 200, [JSON], orjson.dumps({"name": name, "version": version})

    def names(self) -> list[str]:
        return [*self.app.models, *self.unloaded]

    def index(self) -> list[dict[str, Any]]:
        out = []
        for name, model in self.app.models.items():
            entry = {"name": name, "version": model.version, "state": "READY" if model.ready else "UNAVAILABLE"}
            if not model.ready:
                entry["reason"] = "; ".join(self.app._unready(model))
            elif name in self.reasons:
                entry["reason"] = f"the last load failed: {self.reasons[name]}"
            out.append(entry)
        for name, model in self.unloaded.items():
            out.append({"name": name, "version": model.version, "state": "UNAVAILABLE", "reason": "unloaded"})
        return out

    def _version_of(self, name: str) -> str:
        model = self.app.models.get(name) or self.unloaded.get(name)
        return model.version if model is not None else "?"

    # -- lifecycle -------------------------------------------------------------------------
    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def load(self, name: str) -> str:
        """Compile, start and switch to a fresh copy of ``name``; raises BrickworkError (the old
        model untouched) when the file does not compile or the pipeline does not start."""
        from ._metrics import ModelMetrics

        async with self._lock(name):
            old = self.app.models.get(name) or self.unloaded.get(name)
            assert old is not None
            source = getattr(old.pipeline, "source", None)
            try:
                if source is not None:
                    pipeline = _compile(Path(source), getattr(old.pipeline, "source_backend", "local"))
                    if pipeline.name != name:
                        raise BrickworkError(f"{source} now names its pipeline {pipeline.name!r}, not {name!r}; "
                                             "a reload keeps the model's name")
                    pipeline.source = source
                    pipeline.source_backend = getattr(old.pipeline, "source_backend", "local")
                    self._mtimes[name] = _mtime(Path(source))
                elif name in self.unloaded:
                    pipeline = old.pipeline  # no file: the same pipeline, started again
                else:
                    return old.version  # nothing to reload it from: it is loaded
                try:
                    await pipeline.start()
                except Exception as exc:
                    if pipeline is not old.pipeline:
                        await _close(pipeline)
                    raise BrickworkError(f"it did not start: {type(exc).__name__}: {exc}") from exc
            except BrickworkError as exc:
                self.reasons[name] = str(exc)
                log.warning("model %r: load failed, version %s still serves: %s", name, old.version, exc)
                raise
            # the counters carry on (same slots); in flight is counted per version, for the drain
            metrics = ModelMetrics(values=old.metrics.values, shared=old.metrics.shared)
            new = self._model(pipeline, version=str(int(old.version) + 1) if old.version.isdigit() else "1",
                        metrics=metrics)
            new.ready = True
            self.reasons.pop(name, None)
            was_serving = self.unloaded.pop(name, None) is None
            self.app.models[name] = new  # the switch: requests from here on reach the new pipeline
            log.info("model %r: version %s serving", name, new.version)
            if was_serving and old.pipeline is not pipeline:
                self._drain_later(old)
            return new.version

    async def unload(self, name: str) -> None:
        async with self._lock(name):
            model = self.app.models.pop(name, None)
            if model is None:
                return
            model.ready = False
            self.unloaded[name] = model
            await self._drain(model)

    def _drain_later(self, model: Model) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(model))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def _drain(self, model: Model) -> None:
        """Wait for the requests ``model`` is answering, then close its pipeline."""
        deadline = time.monotonic() + self.app.config.drain_timeout_s
        while model.metrics.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await _close(model.pipeline)

    async def close(self) -> None:
        """Server shutdown: finish the drains in progress."""
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)
        for model in self.unloaded.values():
            await _close(model.pipeline)

    # -- hot reload ----------------------------------------------------------------------------
    async def watch(self, interval_s: float = 1.0) -> None:
        """Reload every model whose pipeline file changed (by modification time), until cancelled.
        A file that fails is reported (log, the index's ``reason``) and retried at its next change."""
        for name, model in self.app.models.items():
            source = getattr(model.pipeline, "source", None)
            if source is not None:
                self._mtimes[name] = _mtime(Path(source))
        while True:
            await asyncio.sleep(interval_s)
            for name in list(self.app.models):
                current = self.app.models.get(name)
                source = getattr(current.pipeline, "source", None) if current is not None else None
                if source is None:
                    continue
                mtime = _mtime(Path(source))
                if mtime != self._mtimes.get(name):
                    self._mtimes[name] = mtime
                    try:
                        await self.load(name)
                    except BrickworkError:
                        pass  # logged by load; the old version serves


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return -1.0


def _compile(path: Path, backend: Any) -> Any:
    from ..graph import load_pipeline

    try:
        return load_pipeline(path, backend=backend)
    except BrickworkError:
        raise
    except Exception as exc:  # a brick's module raising on import, and the like
        raise BrickworkError(f"{path}: {type(exc).__name__}: {exc}") from exc


async def _close(pipeline: Any) -> None:
    try:
        await pipeline.aclose()
    except Exception as exc:  # closing an old version must not take the server down
        log.warning("closing pipeline %r: %s: %s", pipeline.name, type(exc).__name__, exc)
