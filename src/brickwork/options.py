"""Per-stage options: batching, workers and fault policy. Frozen, validated on construction.

Durations are float seconds ending in ``_s``; sizes are counts; ``None`` means off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["STAGE_KEYS", "Autoscale", "Batching", "Breaker", "FaultPolicy", "RayPlacement", "StageOptions",
           "WorkerKind"]

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

    max_batch_size: most items (rows, summed over requests) in one call of the brick. Default 1:
        a stage without ``batching`` calls its brick once per request.
    max_delay_s: how long the first request of a batch may wait for more, spent only while
        other requests are on their way to the stage (a lone request or light traffic goes
        through at once); None = do not wait (a batch is whatever is queued when the brick is
        free). Default None.
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
    ``half_open_probes`` calls through and closes when they succeed.

    failures: consecutive failures that open the circuit. Default 5.
    failure_ratio: also open when this fraction (0, 1] of the last ``window`` calls failed;
        None = off. Default None.
    window: how many recent calls ``failure_ratio`` looks at. Default 20.
    reset_after_s: seconds the circuit stays open before probing again. Default 5.0.
    half_open_probes: calls let through while half-open; all must succeed to close. Default 1.
    """

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
    retry_backoff_s: the wait before the first retry is drawn uniformly from [0, this] (full
        jitter); it doubles per retry up to ``retry_backoff_max_s``. A retry is not made when
        the wait would pass the request's deadline. Default 0.05 s; None = retry at once.
    retry_backoff_max_s: the cap on one backoff wait. Default 2.0 s.
    max_down_s: a stage with no live worker for longer than this (its respawns keep failing)
        makes the server's liveness (``/v2/health/live``) fail, so an orchestrator restarts
        it. Default 300.0 s; None = never.
    hedge_after_s: a call not answered after this long is sent again (to another replica or
        URL); the first answer wins, the other is cancelled. ``"auto"`` = the stage's measured
        p95 latency. None = off (default). See ``faults/_hedging.py``.
    hedge_budget: hedges may add at most this fraction of the stage's calls. Default 0.1.
    """

    timeout_s: float | None = None
    retries: int = 0
    retry_budget: float = 0.1
    breaker: Breaker | None = None
    retry_on: Literal["machinery", "any"] = "machinery"
    health_timeout_s: float | None = 60.0
    retry_backoff_s: float | None = 0.05
    retry_backoff_max_s: float = 2.0
    max_down_s: float | None = 300.0
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
        _positive("FaultPolicy", "retry_backoff_s", self.retry_backoff_s)
        _positive("FaultPolicy", "retry_backoff_max_s", self.retry_backoff_max_s, allow_none=False)
        _positive("FaultPolicy", "max_down_s", self.max_down_s)
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"FaultPolicy.retries must be an int >= 0, got {self.retries!r}")
        if not 0 <= self.retry_budget <= 1:
            raise ConfigError(f"FaultPolicy.retry_budget must be in [0, 1], got {self.retry_budget}")
        if self.retry_on not in ("machinery", "any"):
            raise ConfigError(f"FaultPolicy.retry_on must be 'machinery' or 'any', got {self.retry_on!r}")


@dataclass(frozen=True, slots=True)
class Autoscale:
    """Replicas that follow the load (YAML ``replicas: {min: 1, max: 8}``).

    Every ``interval_s`` the stage's load is sampled: batches waiting (queued items divided by
    ``max_batch_size``) plus batches in flight on its replicas. The wanted count is
    ``ceil(load / target_batches)``, clamped to [min, max]. It scales up once the wanted count
    stayed above the current one for ``up_after_s``, and down, one replica at a time and only
    an idle one, once it stayed below for ``down_after_s`` (the hysteresis: a short lull does
    not undo a scale-up). Ray Serve's autoscaling is the model; its defaults are 30 s up and
    600 s down, ours are shorter because a brickwork replica is one batch queue away.

    min: the fewest replicas (the stage starts with ``min``). Default 1.
    max: the most replicas. Default 1.
    target_batches: batches per replica (waiting or running) that count as fully loaded;
        2 = one computing, one ready. Default 2.0.
    up_after_s: seconds the wanted count must stay above the current one to add a replica.
        Default 1.0.
    down_after_s: seconds it must stay below to remove one (an idle one). Default 30.0.
    interval_s: seconds between load samples. Default 0.25.
    """

    min: int = 1
    max: int = 1
    target_batches: float = 2.0
    up_after_s: float = 1.0
    down_after_s: float = 30.0
    interval_s: float = 0.25

    def __post_init__(self) -> None:
        if not isinstance(self.min, int) or not isinstance(self.max, int) or not 1 <= self.min <= self.max:
            raise ConfigError(f"replicas: {{min, max}} needs ints with 1 <= min <= max, got min={self.min!r} "
                              f"max={self.max!r}")
        for name in ("target_batches", "up_after_s", "down_after_s", "interval_s"):
            _positive("replicas", name, getattr(self, name), allow_none=False)


@dataclass(frozen=True, slots=True)
class RayPlacement:
    """Where the Ray backend places a stage's actors (one per replica), in Ray's own terms.

    num_cpus: CPUs each actor reserves; 0 (the default) reserves none, so any node may host it.
    num_gpus: GPUs each actor reserves (fractions share a GPU); default 0.
    memory: bytes of memory each actor reserves; None = no reservation.
    resources: custom resources each actor needs, e.g. ``{"node_b": 1}`` pins it to nodes that
        were started with ``--resources='{"node_b": 1}'``.
    spread: True = place the stage's actors on as many nodes as possible (Ray's SPREAD
        strategy), so losing one node loses as few replicas as possible; default False (Ray's
        default: pack, then spread).
    data_plane: True (the default) = batches of plain tensors go to the actor over its own
        socket (one authenticated TCP connection per ingress and actor, on the node's address,
        an ephemeral port), without a Ray call; False = every batch is a Ray actor call.
    Ignored by the local backends.
    """

    num_cpus: float = 0
    num_gpus: float = 0
    memory: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    spread: bool = False
    data_plane: bool = True

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"ray.{name} must be a number >= 0, got {value!r}")
        if self.memory is not None and (not isinstance(self.memory, int) or self.memory <= 0):
            raise ConfigError(f"ray.memory must be a positive number of bytes, got {self.memory!r}")
        if not isinstance(self.resources, Mapping) or any(
                not isinstance(k, str) or not isinstance(v, int | float) or v < 0
                for k, v in self.resources.items()):
            raise ConfigError(f"ray.resources must map resource names to amounts >= 0, got {self.resources!r}")
        if not isinstance(self.spread, bool):
            raise ConfigError(f"ray.spread must be true or false, got {self.spread!r}")
        if not isinstance(self.data_plane, bool):
            raise ConfigError(f"ray.data_plane must be true or false, got {self.data_plane!r}")
        object.__setattr__(self, "resources", dict(self.resources))

    def __hash__(self) -> int:
        return hash((self.num_cpus, self.num_gpus, self.memory, tuple(sorted(self.resources.items())),
                     self.spread, self.data_plane))


@dataclass(frozen=True, slots=True)
class StageOptions:
    """How one node runs. ``batching``/``worker`` None = the pipeline's default / the brick's.

    batching: dynamic batching of this stage (a mapping of :class:`Batching` fields); None =
        the pipeline's ``defaults: batching`` (without one, batches of 1).
    replicas: copies of the brick serving this stage concurrently, or (YAML, ``updated()``)
        a mapping of :class:`Autoscale` fields, ``{min: 1, max: 8}``, to follow the load.
        Default 1.
    worker: where the brick runs: "inline" (the event loop), "thread", "process", "ray" (an
        actor; only the ray backend runs it); None = the brick's choice (thread for bricks
        that block, inline otherwise).
    device: "cpu" or "cuda[:N]". Default "cpu".
    policy: the :class:`FaultPolicy`; in YAML and as keyword options its fields are given flat.
    ray: actor placement on the ray backend (a mapping of :class:`RayPlacement` fields);
        ignored by the local backends. Default None.
    autoscale: set through ``replicas: {min, max, ...}``; None = a fixed count.
    """

    batching: Batching | None = None
    replicas: int = 1
    worker: WorkerKind | None = None
    device: str = "cpu"
    policy: FaultPolicy = field(default_factory=FaultPolicy)
    ray: RayPlacement | None = None  # actor placement on the ray backend
    autoscale: Autoscale | None = None  # replicas between min and max, following the load

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
            known = {f.name for f in fields(Batching)}
            bad = sorted(set(changes["batching"]) - known)
            if bad:
                raise ConfigError(f"unknown batching field(s) {bad}; batching fields are {sorted(known)}")
            changes["batching"] = Batching(**changes["batching"])
        scaling = changes.get("replicas")
        if isinstance(scaling, dict):
            known_scale = {f.name for f in fields(Autoscale)}
            bad_scale = sorted(set(scaling) - known_scale)
            if bad_scale:
                raise ConfigError(f"unknown replicas field(s) {bad_scale}; give an int, or {{min, max}} "
                                  f"with optional {sorted(known_scale - {'min', 'max'})}")
            scaling = Autoscale(**scaling)
        if isinstance(scaling, Autoscale):
            changes["replicas"], changes["autoscale"] = scaling.min, scaling
        elif "replicas" in changes:  # a fixed count replaces a range set by defaults
            changes.setdefault("autoscale", None)
        if isinstance(changes.get("ray"), dict):
            known_ray = {f.name for f in fields(RayPlacement)}
            bad_ray = sorted(set(changes["ray"]) - known_ray)
            if bad_ray:
                raise ConfigError(f"unknown ray field(s) {bad_ray}; ray fields are {sorted(known_ray)}")
            changes["ray"] = RayPlacement(**changes["ray"])
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


def _stage_keys() -> frozenset[str]:
    """The keys a brick entry (YAML) or a factory (``bw.onnx(..., **options)``) takes as stage
    options: StageOptions' fields with the policy's fields given flat (``autoscale`` is
    spelled ``replicas: {min, max}``)."""
    own = {f.name for f in fields(StageOptions) if f.name not in ("policy", "autoscale")}
    return frozenset(own | {f.name for f in fields(FaultPolicy)})


# The one list of stage-option keys: the YAML loader, the Python factories, dump_graph and the
# YAML reference (docs/yaml.md) all read it. Derived from the dataclasses, so it cannot drift.
STAGE_KEYS: frozenset[str] = _stage_keys()

