"""Per-stage options: batching, workers and fault policy. Frozen, validated on construction.

Durations are float seconds ending in ``_s``; sizes are counts; ``None`` means off.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["Batching", "Breaker", "FaultPolicy", "StageOptions", "WorkerKind"]

WorkerKind = Literal["inline", "thread", "process", "ray"]
WORKER_KINDS: tuple[str, ...] = ("inline", "thread", "process", "ray")


def _positive(owner: str, name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{owner}.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Batching:
    """Dynamic batching of one stage.

    max_batch_size: most items (rows, summed over requests) in one call of the brick. Default 1.
    max_delay_s: how long the first request of a batch may wait for more; None = do not wait
        (a batch is whatever is queued when the brick is free). Default None.
    preferred_batch_sizes: sizes the brick runs fastest at; a batch that reaches one of them is
        sent without waiting out max_delay_s.
    max_queue_size: most requests waiting in the stage; one more gets ``Overloaded`` (503).
    target_latency_s: latency-target mode: the stage picks the largest batch whose measured
        compute time lets requests finish within this target; None = off.
    """

    max_batch_size: int = 1
    max_delay_s: float | None = None
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024
    target_latency_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch_size, int) or self.max_batch_size < 1:
            raise ConfigError(f"Batching.max_batch_size must be an int >= 1, got {self.max_batch_size!r}")
        if self.max_delay_s is not None and (
            not isinstance(self.max_delay_s, int | float) or self.max_delay_s < 0
        ):
            raise ConfigError(f"Batching.max_delay_s must be >= 0 seconds or None, got {self.max_delay_s!r}")
        if not isinstance(self.max_queue_size, int) or self.max_queue_size < 1:
            raise ConfigError(f"Batching.max_queue_size must be an int >= 1, got {self.max_queue_size!r}")
        _positive("Batching", "target_latency_s", self.target_latency_s)
        sizes = tuple(self.preferred_batch_sizes)
        if any(not isinstance(s, int) or s < 1 or s > self.max_batch_size for s in sizes):
            raise ConfigError(
                f"Batching.preferred_batch_sizes must be ints in 1..max_batch_size "
                f"({self.max_batch_size}), got {list(sizes)}"
            )
        object.__setattr__(self, "preferred_batch_sizes", tuple(sorted(sizes)))


@dataclass(frozen=True, slots=True)
class Breaker:
    """Circuit breaker: opens after ``failures`` consecutive failures, or when the failure ratio
    over the last ``window`` calls reaches ``failure_ratio``; after ``reset_after_s`` it lets
    ``half_open_probes`` calls through and closes when they succeed."""

    failures: int = 5
    failure_ratio: float | None = None
    window: int = 20
    reset_after_s: float = 5.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window < 1 or self.half_open_probes < 1:
            raise ConfigError("Breaker.failures, window and half_open_probes must be >= 1")
        if self.failure_ratio is not None and not 0 < self.failure_ratio <= 1:
            raise ConfigError(f"Breaker.failure_ratio must be in (0, 1], got {self.failure_ratio}")
        _positive("Breaker", "reset_after_s", self.reset_after_s, allow_none=False)


@dataclass(frozen=True, slots=True)
class FaultPolicy:
    """What a stage does when a call fails.

    timeout_s: a call that takes longer fails with DeadlineExceeded (504); None = no limit.
    retries: extra attempts for machinery failures (crash, timeout, overload, upstream error).
    retry_budget: retries may add at most this fraction of the stage's calls (0.1 = 10 %).
    breaker: a circuit breaker, or None.
    retry_on: "machinery" (default) or "any" (also when the model itself raised).
    health_timeout_s: a process worker whose batch runs longer than ``timeout_s`` (when set) or
        else this long is taken as hung: it is killed (SIGKILL, by pid) and replaced. Default
        60.0 seconds; None = never (only ``timeout_s`` then).
    hedge_after_s: a call not answered after this long is sent again (to another replica or
        URL); the first answer wins, the other is cancelled. ``"auto"`` = the stage's measured
        p95 latency. None = off (default). See ``hedging.py``.
    hedge_budget: hedges may add at most this fraction of the stage's calls. Default 0.1.
    """

    timeout_s: float | None = None
    retries: int = 0
    retry_budget: float = 0.1
    breaker: Breaker | None = None
    retry_on: Literal["machinery", "any"] = "machinery"
    health_timeout_s: float | None = 60.0
    hedge_after_s: float | Literal["auto"] | None = None
    hedge_budget: float = 0.1

    def __post_init__(self) -> None:
        _positive("FaultPolicy", "timeout_s", self.timeout_s)
        if self.hedge_after_s != "auto":
            _positive("FaultPolicy", "hedge_after_s", self.hedge_after_s)
        if isinstance(self.hedge_budget, bool) or not isinstance(self.hedge_budget, int | float) \
                or not 0 <= self.hedge_budget <= 1:
            raise ConfigError(f"FaultPolicy.hedge_budget must be in [0, 1], got {self.hedge_budget!r}")
        _positive("FaultPolicy", "health_timeout_s", self.health_timeout_s)
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"FaultPolicy.retries must be an int >= 0, got {self.retries!r}")
        if not 0 <= self.retry_budget <= 1:
            raise ConfigError(f"FaultPolicy.retry_budget must be in [0, 1], got {self.retry_budget}")
        if self.retry_on not in ("machinery", "any"):
            raise ConfigError(f"FaultPolicy.retry_on must be 'machinery' or 'any', got {self.retry_on!r}")


@dataclass(frozen=True, slots=True)
class StageOptions:
    """How one node runs. ``batching``/``worker`` None = the pipeline's default / the brick's."""

    batching: Batching | None = None
    replicas: int = 1
    worker: WorkerKind | None = None
    device: str = "cpu"
    policy: FaultPolicy = field(default_factory=FaultPolicy)

    def __post_init__(self) -> None:
        if not isinstance(self.replicas, int) or self.replicas < 1:
            raise ConfigError(f"replicas must be an int >= 1, got {self.replicas!r}")
        if self.worker is not None and self.worker not in WORKER_KINDS:
            raise ConfigError(f"worker must be one of {list(WORKER_KINDS)}, got {self.worker!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")

    def updated(self, **changes: Any) -> StageOptions:
        """Apply keyword options; policy fields (timeout_s, retries, …) may be given flat."""
        policy_keys = {f.name for f in fields(FaultPolicy)}
        own = {f.name for f in fields(StageOptions)}
        policy_changes = {k: changes.pop(k) for k in list(changes) if k in policy_keys}
        unknown = sorted(set(changes) - own)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {unknown}; options are {sorted(own | policy_keys)}"
            )
        if isinstance(changes.get("batching"), dict):
            changes["batching"] = Batching(**changes["batching"])
        if isinstance(policy_changes.get("breaker"), dict):
            known = {f.name for f in fields(Breaker)}
            bad = sorted(set(policy_changes["breaker"]) - known)
            if bad:
                raise ConfigError(f"unknown breaker field(s) {bad}; breaker fields are {sorted(known)}")
            policy_changes["breaker"] = Breaker(**policy_changes["breaker"])
        new = replace(self, **changes)
        if policy_changes:
            new = replace(new, policy=replace(new.policy, **policy_changes))
        return new
