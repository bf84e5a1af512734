"""A federated run as a frozen config, and its YAML form (``brickwork fed run FED.yaml``).

    name: digits_fed                   # names the checkpoint folder, the exported model and the served model
    client: clients:logreg             # factory "module:function", module path relative to this file;
                                       #   called in each client's own process as factory(data, **options)
    options: {}                        # keyword arguments for every factory call (default none)
    clients:                           # one entry per site: its id (default site<i>) and its data path
      - {id: site0, data: data/site0.npz}
      - {data: data/site1.npz, options: {lr: 0.05}}  # per-client options override `options`
    test: data/test.npz                # optional held-out set, evaluated by its own process each round
    rounds: 10                         # rounds to run (default 10)
    fit: {epochs: 1}                   # config handed to every client.fit (default {})
    strategy: fedavg                   # fedavg | fedprox | fedadam | fedyogi, or {name: fedprox, mu: 0.01}
    sampling: {fraction: 1.0, min_clients: 1}  # share of clients per round; quorum (default 1.0, 1)
    deadline_s: 60                     # per round: a client without an answer by then is dropped (null: wait)
    startup_timeout_s: 120             # for a client process to import and load its data
    secure_aggregation: false          # pairwise masks: the server only sees the sum
    privacy: {clip: 1.0, noise_multiplier: 1.0, delta: 1.0e-5}   # optional differential privacy
    checkpoint_dir: .fed/digits_fed    # one checkpoint per round (default .fed/<name>, relative to this file)
    export: {onnx: models/digits_fed.onnx, pipeline: digits_fed.serve.yaml}   # optional, after the last round
    seed: 0                            # client sampling and DP noise
    start_method: forkserver           # forkserver (clients forked from one clean helper process) | spawn
                                       #   | ray (one Ray actor per client, placed by Ray)
    ray_address: null                  # start_method ray: the cluster (null: a local Ray, or the running one)
    ray_num_cpus: 0                    # start_method ray: CPUs each client actor reserves
    preload: [sklearn.linear_model]    # modules the forkserver imports once for every client (default none)

Paths are relative to the YAML file. The server process reads none of the ``data`` paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ._privacy import Privacy

__all__ = ["ClientEntry", "Export", "FedConfig", "load_config"]


@dataclass(frozen=True, slots=True)
class ClientEntry:
    id: str
    data: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Export:
    """Where the final model goes: the ONNX file and a pipeline YAML that serves it."""

    onnx: str
    pipeline: str | None = None


@dataclass(frozen=True, slots=True)
class FedConfig:
    """A federated training run; see the module docstring for each field's meaning and default."""

    name: str
    client: str
    clients: tuple[ClientEntry, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    test: str | None = None
    rounds: int = 10
    fit: Mapping[str, Any] = field(default_factory=dict)
    strategy: Mapping[str, Any] | str = "fedavg"
    fraction: float = 1.0
    min_clients: int = 1
    deadline_s: float | None = 60.0
    startup_timeout_s: float = 120.0
    secure_aggregation: bool = False
    privacy: Privacy | None = None
    checkpoint_dir: str | None = None
    export: Export | None = None
    seed: int = 0
    start_method: str = "forkserver"
    preload: tuple[str, ...] = ()
    ray_address: str | None = None
    ray_num_cpus: float = 0.0
    base_dir: str = "."

    def __post_init__(self) -> None:
        if not self.clients:
            raise ConfigError("a federated run needs at least one client under 'clients'")
        ids = [c.id for c in self.clients]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"client ids must be unique, got {ids}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"sampling.fraction must be in (0, 1], got {self.fraction}")
        if not 1 <= self.min_clients <= len(self.clients):
            raise ConfigError(f"sampling.min_clients must be in 1..{len(self.clients)}, got {self.min_clients}")
        if self.start_method not in ("forkserver", "spawn", "ray"):
            raise ConfigError(f"start_method must be 'forkserver', 'spawn' or 'ray', got {self.start_method!r}")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ConfigError(f"deadline_s must be > 0 or null, got {self.deadline_s}")

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def checkpoints(self) -> Path:
        return self.path(self.checkpoint_dir or f".fed/{self.name}")


_KEYS = {"name", "client", "options", "clients", "test", "rounds", "fit", "strategy", "sampling",
         "deadline_s", "startup_timeout_s", "secure_aggregation", "privacy", "checkpoint_dir", "export",
         "seed", "start_method", "preload", "ray_address", "ray_num_cpus", "description"}


def _mapping(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: field {key!r}: expected a mapping, found {value!r}")
    return dict(value)


def parse_config(doc: Any, *, where: str = "<config>", base_dir: str | Path = ".") -> FedConfig:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top, found {type(doc).__name__}")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(_KEYS)}")
    for key in ("name", "client", "clients"):
        if key not in doc:
            raise ConfigError(f"{where}: missing field {key!r}")
    raw_clients = doc["clients"]
    if not isinstance(raw_clients, list):
        raise ConfigError(f"{where}: field 'clients': expected a list of {{id, data}}, found {raw_clients!r}")
    clients = []
    for i, entry in enumerate(raw_clients):
        if isinstance(entry, str):
            entry = {"data": entry}
        if not isinstance(entry, Mapping) or "data" not in entry:
            raise ConfigError(f"{where}: clients[{i}]: expected {{id: site{i}, data: PATH}}, found {entry!r}")
        clients.append(ClientEntry(str(entry.get("id", f"site{i}")), str(entry["data"]),
                                   _mapping(entry, "options", f"{where}: clients[{i}]")))
    sampling = _mapping(doc, "sampling", where)
    privacy = doc.get("privacy")
    export = doc.get("export")
    try:
        return FedConfig(
            name=str(doc["name"]),
            client=str(doc["client"]),
            clients=tuple(clients),
            options=_mapping(doc, "options", where),
            test=None if doc.get("test") is None else str(doc["test"]),
            rounds=int(doc.get("rounds", 10)),
            fit=_mapping(doc, "fit", where),
            strategy=doc.get("strategy", "fedavg"),
            fraction=float(sampling.get("fraction", 1.0)),
            min_clients=int(sampling.get("min_clients", 1)),
            deadline_s=None if doc.get("deadline_s", 60.0) is None else float(doc.get("deadline_s", 60.0)),
            startup_timeout_s=float(doc.get("startup_timeout_s", 120.0)),
            secure_aggregation=bool(doc.get("secure_aggregation", False)),
            privacy=None if privacy is None else Privacy(**dict(privacy)),
            checkpoint_dir=doc.get("checkpoint_dir"),
            export=None if export is None else Export(**dict(export)),
            seed=int(doc.get("seed", 0)),
            start_method=str(doc.get("start_method", "forkserver")),
            preload=tuple(str(m) for m in doc.get("preload") or ()),
            ray_address=None if doc.get("ray_address") is None else str(doc["ray_address"]),
            ray_num_cpus=float(doc.get("ray_num_cpus", 0.0)),
            base_dir=str(Path(base_dir)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_config(path: str | Path) -> FedConfig:
    """Read ``FED.yaml``; relative paths in it resolve against its folder."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read federated config {str(p)!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_config(doc, where=str(p), base_dir=p.resolve().parent)
