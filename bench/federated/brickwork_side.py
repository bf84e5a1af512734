"""The brickwork side of bench/federated.py: the same task as flwr_side.py through
``brickwork.federated.run`` (one process per client, forked from a forkserver that preloads
scikit-learn; held-out accuracy from an evaluator process).

    python brickwork_side.py DATA_DIR --rounds 3 --epochs 2 --eta0 0.001 [--secure]  -> one JSON line
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

from brickwork.federated import ClientEntry, FedConfig, run  # noqa: E402

T_IMPORTED = time.perf_counter()
HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--eta0", type=float, default=0.001)
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--secure", action="store_true")
    a = p.parse_args()
    data = Path(a.data)
    sys.path.insert(0, str(HERE.parents[1]))  # examples.federated.clients
    cfg = FedConfig(
        name="bench", client="examples.federated.clients:logreg", options={"eta0": a.eta0},
        clients=tuple(ClientEntry(f"site{i}", str(data / f"site{i}.npz")) for i in range(a.clients)),
        test=str(data / "test.npz"), rounds=a.rounds, fit={"epochs": a.epochs}, min_clients=a.clients,
        secure_aggregation=a.secure, preload=("sklearn.linear_model", "sklearn.metrics"),
        checkpoint_dir=str(data / f"ck-{time.time_ns()}"), base_dir=str(data),
    )
    t0 = time.perf_counter()
    result = run(cfg)
    t1 = time.perf_counter()
    h = result.history
    print(json.dumps({
        "side": "brickwork" + (" (secure aggregation)" if a.secure else ""), "accuracy": h[-1].accuracy,
        "accuracy_per_round": [r.accuracy for r in h], "run_s": t1 - t0, "import_s": T_IMPORTED - T_START,
        "startup_s": result.startup_s, "round_s": [r.duration_s for r in h], "fit_s": [r.fit_s for r in h],
        "overhead_s": [r.overhead_s for r in h],
    }))


if __name__ == "__main__":
    main()
