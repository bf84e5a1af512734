"""One client = one process. ``client_main`` is the loop inside it; ``ClientProcess`` is the
server's handle on it (a pipe and the process sentinel, so a crash is seen at once).

The client process builds its ``Client`` from the factory and its own data path; the update it
returns is checked there (shape, finite), clipped (differential privacy) and masked (secure
aggregation) before it leaves the process.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ._messages import (
    EvalIns,
    EvalRes,
    ExportIns,
    ExportRes,
    FitIns,
    FitRes,
    Ready,
    Refusal,
    RevealIns,
    RevealRes,
    Stop,
    WeightsIns,
    WeightsRes,
)
from ._privacy import clip_update
from ._secagg import KeyPair, encode, flatten, mask, pair_seed

__all__ = ["ClientLoop", "ClientProcess", "ClientSpec", "check_update", "client_main", "context", "load_factory"]


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """What a client process needs: its id, the factory, its data path and options."""

    client_id: str
    factory: str  # "package.module:function", called as factory(data, **options)
    data: str
    options: Mapping[str, Any] = field(default_factory=dict)
    secure: bool = False
    paths: tuple[str, ...] = ()  # prepended to sys.path so the factory's module imports
    threads: int = 1


def load_factory(ref: str) -> Any:
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"client factory {ref!r} must look like 'package.module:function'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def check_update(new: Sequence[Any], like: Sequence[np.ndarray]) -> str | None:
    """Why ``new`` cannot be averaged with ``like`` (count, shape, non-finite), or None."""
    if len(new) != len(like):
        return f"{len(new)} arrays, expected {len(like)}"
    for i, (a, b) in enumerate(zip(new, like)):
        arr = np.asarray(a)
        if arr.shape != b.shape:
            return f"array {i} has shape {arr.shape}, expected {b.shape}"
        if not np.issubdtype(arr.dtype, np.number):
            return f"array {i} has dtype {arr.dtype}, expected a number"
        if not np.all(np.isfinite(arr)):
            return f"array {i} holds NaN or infinity"
    return None


def _fit(client: Any, msg: FitIns, spec: ClientSpec, keys: KeyPair | None) -> FitRes | Refusal:
    t0 = time.perf_counter()
    cid = spec.client_id
    try:
        new, n, metrics = client.fit([w.copy() for w in msg.weights], {**msg.config, "round": msg.round})
    except Exception as exc:  # the user's fit raised: report it, keep the process
        return Refusal(cid, msg.round, f"fit raised {type(exc).__name__}: {exc}")
    problem = check_update(new, msg.weights)
    if problem is None and (not isinstance(n, int | np.integer) or n <= 0):
        problem = f"n_examples must be a positive int, got {n!r}"
    if problem is not None:
        return Refusal(cid, msg.round, f"malformed update: {problem}")
    fit_s = time.perf_counter() - t0
    delta = [np.asarray(a, dtype=np.float64) - g for a, g in zip(new, msg.weights)]
    if msg.clip is not None:
        delta, _ = clip_update(delta, msg.clip)
        weight = 1.0  # DP averages clipped updates unweighted
    else:
        weight = float(n)
    scaled = [d * weight for d in delta]
    plain_metrics = {k: float(v) for k, v in dict(metrics).items()}
    if msg.peers is not None:
        if keys is None:
            return Refusal(cid, msg.round, "secure aggregation asked of a client started without keys")
        try:
            encoded = encode(flatten(scaled))
        except ValueError as exc:
            return Refusal(cid, msg.round, f"malformed update: {exc}")
        peers = {p.client_id: p.public_key for p in msg.peers}
        masked = mask(encoded, me=cid, keys=keys, peers=peers, round_=msg.round)
        return FitRes(cid, msg.round, (masked,), int(n), weight, plain_metrics, fit_s, masked=True)
    return FitRes(cid, msg.round, tuple(scaled), int(n), weight, plain_metrics, fit_s)


class ClientLoop:
    """A client's side of the protocol, wherever it runs (a process, a Ray actor): builds the
    client from its factory and data path, then turns each message into its reply."""

    def __init__(self, spec: ClientSpec) -> None:
        for p in reversed(spec.paths):
            if p not in sys.path:
                sys.path.insert(0, p)
        if spec.threads:
            os.environ.setdefault("OMP_NUM_THREADS", str(spec.threads))
        self.spec = spec
        self.client: Any = None
        self.keys: KeyPair | None = None
        self.peers_of: dict[int, dict[str, int]] = {}
        cid = spec.client_id
        try:
            self.client = load_factory(spec.factory)(spec.data, **dict(spec.options))
        except Exception as exc:  # reported to the server, which drops this client
            self.hello: Ready | Refusal = Refusal(
                cid, 0, f"client factory {spec.factory} failed: {type(exc).__name__}: {exc}")
            return
        self.keys = KeyPair() if spec.secure else None
        self.hello = Ready(cid, os.getpid(), self.keys.public if self.keys else None)

    def handle(self, msg: Any) -> Any:
        cid, client, keys = self.spec.client_id, self.client, self.keys
        if isinstance(msg, FitIns):
            if msg.peers is not None:
                self.peers_of = {msg.round: {p.client_id: p.public_key for p in msg.peers}}
            return _fit(client, msg, self.spec, keys)
        if isinstance(msg, RevealIns):
            known = self.peers_of.get(msg.round, {})
            if keys is None or any(d not in known for d in msg.dropped):
                return Refusal(cid, msg.round, "asked to reveal seeds for clients it never masked against")
            return RevealRes(cid, msg.round, {d: pair_seed(keys.shared(known[d]), msg.round) for d in msg.dropped})
        try:
            if isinstance(msg, EvalIns):
                loss, n, metrics = client.evaluate([w.copy() for w in msg.weights], {**msg.config, "round": msg.round})
                return EvalRes(cid, msg.round, float(loss), int(n), {k: float(v) for k, v in dict(metrics).items()})
            if isinstance(msg, WeightsIns):
                return WeightsRes(cid, tuple(np.asarray(w) for w in client.get_weights()))
            if isinstance(msg, ExportIns):
                out = client.export_onnx([w.copy() for w in msg.weights], msg.path)
                return ExportRes(cid, out.path, tuple(out.inputs), tuple(out.outputs), dict(out.example))
        except Exception as exc:  # the user's code raised: report it, keep the client
            return Refusal(cid, getattr(msg, "round", 0), f"{type(msg).__name__} raised {type(exc).__name__}: {exc}")
        return Refusal(cid, 0, f"unknown message {type(msg).__name__}")


def client_main(conn: Connection, spec: ClientSpec) -> None:
    """The client process: build the client, say Ready, answer until Stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    loop = ClientLoop(spec)
    conn.send(loop.hello)
    if isinstance(loop.hello, Refusal):
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if isinstance(msg, Stop):
            return
        try:
            conn.send(loop.handle(msg))
        except (BrokenPipeError, OSError):
            return


def context(start_method: str, preload: Sequence[str]) -> Any:
    """The multiprocessing context for client processes.

    ``forkserver`` (the default where it exists): one clean helper process, started from scratch
    (not a fork of the server), imports ``preload`` (e.g. ``torch``, ``sklearn.linear_model``)
    once, and every client is forked from it: a client starts in milliseconds instead of
    re-importing its framework, and still shares no memory with the server. ``spawn``: a fresh
    interpreter per client. The preload list is fixed when the helper first starts (once per
    server process, and restarted when a later run asks for another list)."""
    if start_method not in mp.get_all_start_methods():
        start_method = "spawn"
    ctx = mp.get_context(start_method)
    if start_method == "forkserver":
        wanted = ["brickwork.federated._process", *preload]
        from multiprocessing import forkserver

        helper = forkserver._forkserver  # the process-wide helper (private, checked defensively)
        running = getattr(helper, "_forkserver_pid", None) is not None
        if running and getattr(helper, "_preload_modules", wanted) != wanted and hasattr(helper, "_stop"):
            helper._stop()  # restart it with this run's preload; processes it forked live on
        ctx.set_forkserver_preload(wanted)
    return ctx


class ClientProcess:
    """The server's handle on one client process (forked from a clean forkserver or spawned,
    so it shares nothing with the server)."""

    def __init__(self, spec: ClientSpec, ctx: Any = None) -> None:
        ctx = ctx or mp.get_context("spawn")
        self.spec = spec
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=client_main, args=(child, spec), name=f"brickwork-fed-{spec.client_id}",
                                daemon=True)
        self.proc.start()
        child.close()
        self.ready: Ready | None = None

    @property
    def client_id(self) -> str:
        return self.spec.client_id

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.is_alive()

    def send(self, msg: Any) -> bool:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            return False
        return True

    def exit_reason(self) -> str:
        self.proc.join(1.0)
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                return f"crashed: killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"crashed: killed by signal {-code}"
        return f"crashed: exit code {code}"

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5.0)
        self.conn.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc.is_alive():
            self.send(Stop())
            self.proc.join(timeout_s)
        self.kill()

