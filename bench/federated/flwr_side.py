"""The Flower side of bench/federated.py: runs INSIDE the Flower venv (bench/.venvs/flwr), never in
brickwork's. Flower 1.42's simulation runtime (Ray backend), legacy NumPyClient + FedAvg, the
same SGD logistic regression, data split, rounds and local epochs as the brickwork side.

    python flwr_side.py DATA_DIR --rounds 3 --epochs 2 --eta0 0.001   -> one JSON line on stdout
"""

from __future__ import annotations

import argparse
import json
import os
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402
from flwr.client import ClientApp, NumPyClient  # noqa: E402
from flwr.common import Context, ndarrays_to_parameters  # noqa: E402
from flwr.server import ServerApp, ServerAppComponents, ServerConfig  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402

T_IMPORTED = time.perf_counter()
CLASSES = np.arange(10)


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        return z["x"].astype(np.float64), z["y"]


def model(eta0: float) -> SGDClassifier:
    m = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=eta0, alpha=1e-4, random_state=0)
    m.partial_fit(np.zeros((1, 64)), [0], classes=CLASSES)
    m.coef_, m.intercept_ = np.zeros((10, 64)), np.zeros(10)
    return m


class SiteClient(NumPyClient):
    def __init__(self, path: str, eta0: float, epochs: int) -> None:
        self.x, self.y = load(path)
        self.model = model(eta0)
        self.epochs = epochs
        self.rng = np.random.default_rng(0)

    def get_parameters(self, config):  # type: ignore[no-untyped-def]
        return [self.model.coef_, self.model.intercept_]

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        self.model.coef_, self.model.intercept_ = np.array(parameters[0]), np.array(parameters[1])
        for _ in range(self.epochs):
            order = self.rng.permutation(len(self.x))
            self.model.partial_fit(self.x[order], self.y[order], classes=CLASSES)
        return [self.model.coef_, self.model.intercept_], len(self.x), {"fit_s": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--eta0", type=float, default=0.001)
    p.add_argument("--clients", type=int, default=3)
    a = p.parse_args()
    x_test, y_test = load(os.path.join(a.data, "test.npz"))
    evaluator = model(a.eta0)
    marks: list[float] = []
    accuracy: list[float] = []
    fit_s: list[float] = []

    def evaluate(rnd, parameters, config):  # type: ignore[no-untyped-def]
        evaluator.coef_, evaluator.intercept_ = parameters[0], parameters[1]
        acc = float(np.mean(evaluator.predict(x_test) == y_test))
        marks.append(time.perf_counter())
        accuracy.append(acc)
        return 0.0, {"accuracy": acc}

    def fit_metrics(results):  # type: ignore[no-untyped-def]
        fit_s.append(max(m["fit_s"] for _, m in results))
        return {}

    def client_fn(context: Context):  # type: ignore[no-untyped-def]
        pid = int(context.node_config["partition-id"])
        return SiteClient(os.path.join(a.data, f"site{pid}.npz"), a.eta0, a.epochs).to_client()

    def server_fn(context: Context) -> ServerAppComponents:
        init = ndarrays_to_parameters([np.zeros((10, 64)), np.zeros(10)])
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=a.clients,
                          min_available_clients=a.clients, initial_parameters=init, evaluate_fn=evaluate,
                          fit_metrics_aggregation_fn=fit_metrics)
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=a.rounds))

    t0 = time.perf_counter()
    run_simulation(server_app=ServerApp(server_fn=server_fn), client_app=ClientApp(client_fn=client_fn),
                   num_supernodes=a.clients, backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})
    t1 = time.perf_counter()
    rounds = [marks[i + 1] - marks[i] for i in range(len(marks) - 1)]
    print(json.dumps({
        "side": "flower", "accuracy": accuracy[-1], "accuracy_per_round": accuracy[1:],
        "run_s": t1 - t0, "import_s": T_IMPORTED - T_START, "round_s": rounds, "fit_s": fit_s,
        "overhead_s": [r - f for r, f in zip(rounds, fit_s)],
    }))


if __name__ == "__main__":
    main()
