"""Federated training: several sites train one model together, each on data that never leaves it.

    import brickwork as bw

    config = bw.federated.load_config("examples/federated/digits_logreg.yaml")
    result = bw.federated.run(config)            # rounds over one process per client
    print(result.history[-1].accuracy, result.pipeline)   # brickwork serve <pipeline>

The server process spawns one process per client; each builds its ``Client`` from its own data
path, and the server only ever receives updates (masked ones under secure aggregation). See
docs/federated.md.
"""

from __future__ import annotations

from ._clients import SklearnClient, TorchClient, load_npz
from ._config import ClientEntry, Export, FedConfig, load_config, parse_config
from ._privacy import Privacy, epsilon
from ._progress import Progress, format_round, plot_accuracy
from ._protocol import Client, Exported
from ._runner import RoundReport, RunResult, Server, run
from ._strategies import FedAdam, FedAvg, FedProx, FedYogi, Strategy, make_strategy, sample_clients

__all__ = [
    "Client", "ClientEntry", "Export", "Exported", "FedAdam", "FedAvg", "FedConfig", "FedProx", "FedYogi",
    "Privacy", "Progress", "RoundReport", "RunResult", "Server", "SklearnClient", "Strategy", "TorchClient",
    "epsilon", "format_round", "load_config", "load_npz", "make_strategy", "parse_config", "plot_accuracy",
    "run", "sample_clients",
]
