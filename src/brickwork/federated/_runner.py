"""The server: runs rounds over client processes, with a deadline and a quorum per round,
secure aggregation, differential privacy, a checkpoint per round and ``resume``.

A round: sample clients -> start any whose process is gone -> send the global weights ->
gather updates until every sampled client answered or the deadline passed -> (secure
aggregation) ask the survivors for the seeds they share with the lost -> if at least
``min_clients`` answered, average and apply the strategy, else keep the weights -> evaluate ->
checkpoint. A client that crashes, hangs past the deadline (its process is killed and restarted
for a later round) or sends a malformed update is dropped from the round, with the reason in
the round's report.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FederatedError
from . import _checkpoint
from ._config import FedConfig
from ._messages import (
    EvalIns,
    EvalRes,
    ExportIns,
    ExportRes,
    FitIns,
    FitRes,
    Peer,
    Ready,
    Refusal,
    RevealIns,
    RevealRes,
    WeightsIns,
    WeightsRes,
)
from ._privacy import epsilon, gaussian_noise
from ._process import ClientProcess, ClientSpec, check_update, context
from ._secagg import decode, unflatten, unmask_dropped
from ._strategies import Strategy, make_strategy, sample_clients

__all__ = ["RoundReport", "RunResult", "Server", "run"]

EVALUATOR = "evaluator"


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What happened in one round. ``dropped`` maps a client id to why it was left out."""

    round: int
    status: str  # "ok" | "skipped" (quorum not met; weights unchanged)
    sampled: tuple[str, ...]
    answered: tuple[str, ...]
    dropped: Mapping[str, str]
    n_examples: int
    train_loss: float | None
    loss: float | None
    accuracy: float | None
    epsilon: float | None
    delta: float | None
    secure: bool
    duration_s: float
    fit_s: float  # the slowest answering client's local training time
    overhead_s: float  # duration_s - fit_s: everything that is not local training
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sampled"], d["answered"], d["dropped"] = list(self.sampled), list(self.answered), dict(self.dropped)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RoundReport:
        return cls(**{**d, "sampled": tuple(d["sampled"]), "answered": tuple(d["answered"])})


@dataclass(frozen=True, slots=True)
class RunResult:
    weights: list[np.ndarray]
    history: list[RoundReport]
    onnx: str | None = None
    pipeline: str | None = None
    resumed_from: int | None = None
    startup_s: float = 0.0  # starting every client process before round 1
    not_started: dict[str, str] = field(default_factory=dict)


def _gather(handles: Mapping[str, Any], expect: type, round_: int, deadline: float | None,
            deadline_s: float | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Wait for one answer of type ``expect`` from every handle; the rest get a reason."""
    if any(not isinstance(h, ClientProcess) for h in handles.values()):
        from ._ray import gather

        return gather(handles, expect, round_, deadline, deadline_s)
    pending = dict(handles)
    got: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    while pending:
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            for cid, h in pending.items():
                h.kill()
                dropped[cid] = f"hung: no answer within deadline_s={deadline_s:g}"
            break
        objects: list[Any] = [h.conn for h in pending.values()] + [h.proc.sentinel for h in pending.values()]
        ready = set(wait(objects, timeout))
        for cid, h in list(pending.items()):
            if h.conn in ready or h.conn.poll():
                try:
                    msg = h.conn.recv()
                except (EOFError, OSError):
                    dropped[cid] = h.exit_reason()
                else:
                    if isinstance(msg, Refusal):
                        dropped[cid] = msg.reason
                    elif isinstance(msg, expect) and getattr(msg, "round", round_) == round_:
                        got[cid] = msg
                    else:
                        continue  # a stale answer from an earlier request: keep waiting
                del pending[cid]
            elif h.proc.sentinel in ready:
                dropped[cid] = h.exit_reason()
                del pending[cid]
    return got, dropped


def _weighted(values: Sequence[tuple[float, int]]) -> float | None:
    n = sum(k for _, k in values)
    return None if n == 0 else sum(v * k for v, k in values) / n


class Server:
    """Holds the client processes and the global model across rounds."""

    def __init__(self, config: FedConfig, *, progress: Callable[[RoundReport], None] | None = None) -> None:
        self.config = config
        self.progress = progress
        self.strategy: Strategy = make_strategy(config.strategy)
        self.handles: dict[str, Any] = {}  # ClientProcess, or RayClient on start_method: ray
        self.weights: list[np.ndarray] = []
        self.history: list[RoundReport] = []
        self.dp_rounds = 0
        self._paths = (str(Path(config.base_dir).resolve()), os.getcwd())
        if config.start_method == "ray":
            from ._ray import init

            init(config.ray_address)
            self._ctx = None
        else:
            self._ctx = context(config.start_method, config.preload)

    # -- processes -----------------------------------------------------------------
    def _spec(self, cid: str) -> ClientSpec:
        c = self.config
        if cid == EVALUATOR:
            assert c.test is not None
            return ClientSpec(cid, c.client, str(c.path(c.test)), dict(c.options), False, self._paths)
        entry = next(e for e in c.clients if e.id == cid)
        return ClientSpec(cid, c.client, str(c.path(entry.data)), {**c.options, **entry.options},
                          c.secure_aggregation, self._paths)

    def _start(self, ids: Sequence[str]) -> dict[str, str]:
        """Start the processes of ``ids`` that are not running; returns {id: why it failed}."""
        fresh = {}
        for cid in ids:
            h = self.handles.get(cid)
            if h is not None and h.alive():
                continue
            if h is not None:
                h.kill()
            fresh[cid] = self.handles[cid] = self._new(cid)
        if not fresh:
            return {}
        got, failed = _gather(fresh, Ready, 0, time.monotonic() + self.config.startup_timeout_s,
                              self.config.startup_timeout_s)
        for cid, msg in got.items():
            fresh[cid].ready = msg
        for cid in failed:
            self.handles.pop(cid).kill()
        return {cid: f"did not start: {why}" for cid, why in failed.items()}

    def _new(self, cid: str) -> Any:
        if self.config.start_method == "ray":
            from ._ray import RayClient

            return RayClient(self._spec(cid), num_cpus=self.config.ray_num_cpus)
        return ClientProcess(self._spec(cid), self._ctx)

    def pids(self) -> dict[str, int | None]:
        return {cid: h.pid for cid, h in self.handles.items() if h.alive()}

    def close(self) -> None:
        for h in self.handles.values():
            h.stop()
        self.handles.clear()

    def _ask_one(self, ids: Sequence[str], msg: Any, expect: type) -> Any:
        """Send ``msg`` to the first of ``ids`` that answers with ``expect``."""
        reasons = {}
        for cid in ids:
            failed = self._start([cid])
            if failed:
                reasons.update(failed)
                continue
            self.handles[cid].send(msg)
            limit = self.config.startup_timeout_s  # building or exporting a model, not training
            got, dropped = _gather({cid: self.handles[cid]}, expect, 0, time.monotonic() + limit, limit)
            if cid in got:
                return got[cid]
            reasons.update(dropped)
        raise FederatedError(f"no client could answer {type(msg).__name__}: {reasons}")

    def _service_ids(self) -> list[str]:
        ids = [c.id for c in self.config.clients]
        return [EVALUATOR, *ids] if self.config.test else ids

    # -- rounds ----------------------------------------------------------------------
    def initial_weights(self) -> list[np.ndarray]:
        res: WeightsRes = self._ask_one(self._service_ids(), WeightsIns(), WeightsRes)
        return [np.asarray(w) for w in res.weights]

    def resume(self) -> int:
        """Load the newest checkpoint; returns its round (0 when there is none)."""
        ck = _checkpoint.latest(self.config.checkpoints)
        if ck is None:
            return 0
        self.weights = ck.weights
        self.strategy.load_state(ck.strategy_state)
        self.history = [RoundReport.from_dict(d) for d in ck.history]
        self.dp_rounds = sum(1 for r in self.history if r.status == "ok" and r.epsilon is not None)
        return ck.round

    def run_round(self, rnd: int) -> RoundReport:
        c = self.config
        t0 = time.monotonic()
        ids = [e.id for e in c.clients]
        rng = np.random.default_rng([c.seed, rnd])
        sampled = sample_clients(ids, fraction=c.fraction, min_clients=c.min_clients, rng=rng)
        dropped: dict[str, str] = dict(self._start(sampled))
        live = [cid for cid in sampled if cid not in dropped]
        peers = None
        if c.secure_aggregation:
            peers = tuple(Peer(cid, int(self.handles[cid].ready.public_key))
                          for cid in live)
        config = {**c.fit, **self.strategy.fit_config()}
        clip = c.privacy.clip if c.privacy else None
        ins = FitIns(rnd, tuple(self.weights), config, peers, clip)
        sent_at = time.monotonic()  # the deadline counts from here, not from restarting lost clients
        for cid in live:
            if not self.handles[cid].send(ins):
                dropped[cid] = self.handles[cid].exit_reason()
        sent = {cid: self.handles[cid] for cid in live if cid not in dropped}
        deadline = None if c.deadline_s is None else sent_at + c.deadline_s
        got, lost = _gather(sent, FitRes, rnd, deadline, c.deadline_s)
        dropped.update(lost)
        got = self._validate(got, dropped)
        revealed: dict[str, Mapping[str, int]] = {}
        reason = None
        if c.secure_aggregation and got:
            lost_after_mask = tuple(cid for cid in live if cid not in got)
            if lost_after_mask:
                revealed, reason = self._recover(rnd, got, lost_after_mask, deadline)
        fit_s = max((r.fit_s for r in got.values()), default=0.0)
        train_loss = _weighted([(r.metrics["loss"], r.n_examples) for r in got.values() if "loss" in r.metrics])
        eps = None
        if reason is None and len(got) < c.min_clients:
            reason = f"quorum not met: {len(got)} of min_clients={c.min_clients} answered"
        if reason is None:
            delta = self._aggregate(got, revealed, rng)
            self.weights = self.strategy.apply(self.weights, delta)
            if c.privacy is not None:
                self.dp_rounds += 1
                eps = epsilon(self.dp_rounds, c.privacy.noise_multiplier, c.privacy.delta)
        loss, acc = self._evaluate(rnd, list(got) or live)
        duration = time.monotonic() - t0
        report = RoundReport(
            round=rnd, status="ok" if reason is None else "skipped", sampled=tuple(sampled),
            answered=tuple(cid for cid in sampled if cid in got), dropped=dropped,
            n_examples=sum(r.n_examples for r in got.values()), train_loss=train_loss, loss=loss,
            accuracy=acc, epsilon=eps, delta=c.privacy.delta if c.privacy else None,
            secure=c.secure_aggregation, duration_s=duration, fit_s=fit_s,
            overhead_s=max(0.0, duration - fit_s), reason=reason,
        )
        self.history.append(report)
        _checkpoint.save(c.checkpoints, rnd, self.weights, self.strategy.state(),
                         [r.as_dict() for r in self.history])
        return report

    def _validate(self, got: dict[str, FitRes], dropped: dict[str, str]) -> dict[str, FitRes]:
        """The server's own check of what arrived (the client process checked before sending)."""
        size = sum(w.size for w in self.weights)
        ok = {}
        for cid, res in got.items():
            if res.masked:
                problem = None
                if len(res.update) != 1 or res.update[0].dtype != np.uint64 or res.update[0].shape != (size,):
                    problem = f"masked update is not one uint64 vector of {size}"
            else:
                problem = check_update(res.update, self.weights)
            if problem is None and not (math.isfinite(res.weight) and res.weight > 0):
                problem = f"weight {res.weight!r} is not a positive number"
            if problem is not None:
                dropped[cid] = f"malformed update: {problem}"
            else:
                ok[cid] = res
        return ok

    def _recover(self, rnd: int, got: dict[str, FitRes], lost: tuple[str, ...], deadline: float | None
                 ) -> tuple[dict[str, Mapping[str, int]], str | None]:
        survivors = {cid: self.handles[cid] for cid in got}
        for h in survivors.values():
            h.send(RevealIns(rnd, lost))
        # recovery gets its own deadline_s: the survivors only hash, they do not train
        own = None if self.config.deadline_s is None else time.monotonic() + self.config.deadline_s
        answers, failed = _gather(survivors, RevealRes, rnd, own, self.config.deadline_s)
        if failed:
            return {}, f"secure aggregation recovery failed: {failed}"
        return {cid: dict(a.seeds) for cid, a in answers.items()}, None

    def _aggregate(self, got: Mapping[str, FitRes], revealed: Mapping[str, Mapping[str, int]],
                   rng: np.random.Generator) -> list[np.ndarray]:
        total_weight = sum(r.weight for r in got.values())
        if self.config.secure_aggregation:
            ring = np.zeros(sum(w.size for w in self.weights), dtype=np.uint64)
            for r in got.values():
                ring += r.update[0]  # wraps modulo 2**64: the masks cancel
            ring = unmask_dropped(ring, revealed)
            summed = unflatten(decode(ring), self.weights)
        else:
            summed = [np.sum([r.update[i] for r in got.values()], axis=0) for i in range(len(self.weights))]
        mean = [s / total_weight for s in summed]
        p = self.config.privacy
        if p is not None and p.noise_multiplier > 0:
            std = p.noise_multiplier * p.clip / len(got)
            mean = [m + n for m, n in zip(mean, gaussian_noise([w.shape for w in self.weights], std, rng))]
        return mean

    def _evaluate(self, rnd: int, ids: Sequence[str]) -> tuple[float | None, float | None]:
        targets = [EVALUATOR] if self.config.test else list(ids)
        if self._start(targets) and self.config.test:
            return None, None
        handles = {cid: self.handles[cid] for cid in targets if cid in self.handles}
        ins = EvalIns(rnd, tuple(self.weights), dict(self.config.fit))
        for h in handles.values():
            h.send(ins)
        deadline = None if self.config.deadline_s is None else time.monotonic() + self.config.deadline_s
        got, _ = _gather(handles, EvalRes, rnd, deadline, self.config.deadline_s)
        loss = _weighted([(r.loss, r.n_examples) for r in got.values()])
        acc = _weighted([(r.metrics["accuracy"], r.n_examples) for r in got.values() if "accuracy" in r.metrics])
        return loss, acc

    def export(self) -> ExportRes | None:
        e = self.config.export
        if e is None:
            return None
        path = self.config.path(e.onnx)
        path.parent.mkdir(parents=True, exist_ok=True)
        res: ExportRes = self._ask_one(self._service_ids(), ExportIns(tuple(self.weights), str(path)), ExportRes)
        return res


def run(config: FedConfig, *, resume: bool = False, rounds: int | None = None,
        progress: Callable[[RoundReport], None] | None = None) -> RunResult:
    """Run ``config.rounds`` rounds (or continue from the newest checkpoint with ``resume``),
    export the model if ``config.export`` says so, and stop every client process."""
    from ._export import write_pipeline

    server = Server(config, progress=progress)
    total = rounds if rounds is not None else config.rounds
    try:
        start = server.resume() if resume else 0
        t0 = time.monotonic()
        not_started = server._start(server._service_ids()) if start < total else {}
        startup_s = time.monotonic() - t0
        if not server.weights:
            server.weights = server.initial_weights()
        for rnd in range(start + 1, total + 1):
            report = server.run_round(rnd)
            if progress is not None:
                progress(report)
        exported = server.export()
    finally:
        server.close()
    onnx = pipeline = None
    if exported is not None:
        onnx = exported.path
        pipeline = write_pipeline(config, exported)
    ok = [r for r in server.history if r.status == "ok"]
    if not ok and total > 0 and start < total:
        raise FederatedError(f"no round reached its quorum; last reason: {server.history[-1].reason}")
    return RunResult(server.weights, server.history, onnx, pipeline, start or None, startup_s, not_started)
