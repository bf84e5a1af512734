"""Federated rounds over real client processes: accuracy against central training, secure
aggregation's exact sum, differential privacy's budget, faults (SIGKILL, hang, NaN, wrong
shape) and the server never opening a client's data."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.integration import fed_kit

from brickwork.federated import ClientEntry, FedConfig, Privacy, Server, run
from brickwork.federated._messages import FitRes
from brickwork.federated._secagg import decode, encode

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("sklearn")
    return fed_kit.split(tmp_path_factory.mktemp("digits"), sites=3)


def make(tmp: Path, data: dict[str, Path], *, client: str = "tests.integration.fed_kit:faulty",
         per_client: dict[int, dict[str, Any]] | None = None, **kw: Any) -> FedConfig:
    per_client = per_client or {}
    clients = tuple(ClientEntry(f"site{i}", str(data[f"site{i}"]), per_client.get(i, {})) for i in range(3))
    kw.setdefault("rounds", 2)
    kw.setdefault("deadline_s", 60.0)
    return FedConfig(name="t", client=client, clients=clients, checkpoint_dir=str(tmp / "ck"), base_dir=str(tmp),
                     **kw)


class Spy(Server):
    """Keeps what arrived from each client, as the server saw it."""

    seen: list[dict[str, FitRes]]

    def _validate(self, got: dict[str, FitRes], dropped: dict[str, str]) -> dict[str, FitRes]:
        self.__dict__.setdefault("seen", []).append(dict(got))
        return super()._validate(got, dropped)


def rounds_of(server: Server, n: int) -> list[Any]:
    server._start(server._service_ids())
    server.weights = server.initial_weights()
    try:
        return [server.run_round(r) for r in range(1, n + 1)]
    finally:
        server.close()


def test_secure_sum_equals_plain_sum_and_one_masked_update_looks_like_noise(tmp_path: Path, data: dict) -> None:
    plain = Spy(make(tmp_path / "plain", data))
    secure = Spy(make(tmp_path / "secure", data, secure_aggregation=True))
    rounds_of(plain, 2)
    rounds_of(secure, 2)
    # the same clients from the same weights: the models agree to fixed-point precision
    for a, b in zip(plain.weights, secure.weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
        assert np.abs(a).max() > 0.01  # and they did learn something
    masked = secure.seen[0]["site0"].update[0]
    clear = encode(np.concatenate([u.ravel() for u in plain.seen[0]["site0"].update]))
    assert masked.dtype == np.uint64 and masked.shape == clear.shape
    # the clear encoding of a small update has its top bits all 0 or all 1 (sign extension);
    # every bit of the masked one is 1 half of the time, and it does not track the update
    bits = ((masked[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 0.1), bits
    top = (clear >> np.uint64(40)).astype(np.float64)
    assert set(np.unique(top)) <= {0.0, float(2**24 - 1)}
    corr = np.corrcoef(decode(masked), decode(clear))[0, 1]
    assert abs(corr) < 0.15
    # and the masked sum the server decoded is the plain sum
    total = sum(res.update[0] for res in secure.seen[0].values())
    plain_total = sum(np.concatenate([u.ravel() for u in r.update]) for r in plain.seen[0].values())
    np.testing.assert_allclose(decode(total), plain_total, rtol=0, atol=1e-6)


def test_federated_accuracy_within_2_points_of_central(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from examples.federated import clients
    from sklearn.linear_model import SGDClassifier

    paths = fed_kit.split(tmp_path / "data", sites=5)
    cfg = FedConfig(name="acc", client="examples.federated.clients:logreg",
                    clients=tuple(ClientEntry(f"site{i}", str(paths[f"site{i}"])) for i in range(5)),
                    test=str(paths["test"]), rounds=12, fit={"epochs": 2}, secure_aggregation=True,
                    preload=("sklearn.linear_model", "sklearn.metrics"),
                    min_clients=3, checkpoint_dir=str(tmp_path / "ck"), base_dir=str(tmp_path))
    result = run(cfg)
    fed_acc = result.history[-1].accuracy
    # central: the same model and settings on the union, as many passes as a site made in total
    central = clients.logreg(str(paths["union"]))
    assert isinstance(central.estimator, SGDClassifier)
    weights = central.get_weights()
    for _ in range(12):
        weights, _, _ = central.fit(weights, {"epochs": 2})
    _, _, metrics = central.evaluate(weights, {})
    x_test, y_test = fed_kit.load_npz(paths["test"])
    central_acc = float(np.mean(central.estimator.predict(x_test.astype(np.float64)) == y_test))
    assert metrics["accuracy"] > 0.9 and central_acc > 0.9
    assert fed_acc is not None and fed_acc >= central_acc - 0.02, (fed_acc, central_acc)
    assert all(r.status == "ok" and len(r.answered) == 5 for r in result.history)


def test_differential_privacy_reports_its_budget(tmp_path: Path, data: dict) -> None:
    result = run(make(tmp_path, data, rounds=3, secure_aggregation=True,
                      privacy=Privacy(clip=2.0, noise_multiplier=1.0, delta=1e-5)))
    eps = [r.epsilon for r in result.history]
    assert all(e is not None and 0 < e < float("inf") for e in eps)
    assert eps[0] < eps[1] < eps[2]  # the budget spent grows with every round
    assert all(r.delta == 1e-5 for r in result.history)


def test_round_survives_sigkill_nan_and_wrong_shape_then_a_hang(tmp_path: Path, data: dict) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    # site0 kills itself (SIGKILL) in round 2 and hangs in round 3 after its restart;
    # site1 sends NaN in round 2; site2 is healthy. min_clients=1 keeps every round alive
    per = {0: {"fault": "sigkill", "on_round": 2, "pid_dir": str(pids)},
           1: {"fault": "nan", "on_round": 2, "pid_dir": str(pids)},
           2: {"pid_dir": str(pids)}}
    server = Server(make(tmp_path, data, per_client=per, secure_aggregation=True, rounds=3, deadline_s=4.0))
    try:
        reports = rounds_of(server, 2)
        server.config.clients[0].options["fault"] = "hang"  # the restarted site0 hangs in round 3
        server.config.clients[0].options["on_round"] = 3
        server._start(server._service_ids())
        reports.append(server.run_round(3))
    finally:
        server.close()
    r1, r2, r3 = reports
    assert r1.status == "ok" and len(r1.answered) == 3
    assert r2.status == "ok" and r2.answered == ("site2",)
    assert "SIGKILL" in r2.dropped["site0"]
    assert "NaN" in r2.dropped["site1"]
    assert r3.status == "ok" and "site0" not in r3.answered and "hung" in r3.dropped["site0"]
    assert r3.accuracy is not None and r3.accuracy > 0.3  # the recovered sums are models, not noise
    for p in pids.glob("*.pid"):  # every client process is gone
        pid = int(p.stem)
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_wrong_shape_update_is_dropped_and_quorum_skips_the_round(tmp_path: Path, data: dict) -> None:
    per = {0: {"fault": "shape", "on_round": 1}, 1: {"fault": "shape", "on_round": 1}}
    result = run(make(tmp_path, data, per_client=per, rounds=2, min_clients=2))
    r1, r2 = result.history
    assert r1.status == "skipped" and "quorum" in (r1.reason or "")
    assert "shape" in r1.dropped["site0"] and "shape" in r1.dropped["site1"]
    assert r2.status == "ok" and len(r2.answered) == 3


def test_server_process_never_opens_client_data(tmp_path: Path, data: dict) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        opened = []
        sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == "open" and args else None)
        from brickwork.federated import ClientEntry, FedConfig, run
        sites = {json.dumps({k: str(v) for k, v in data.items()})}
        cfg = FedConfig(name="audit", client="tests.integration.fed_kit:softmax",
                        clients=tuple(ClientEntry(k, v) for k, v in sites.items() if k.startswith("site")),
                        test=sites["test"], rounds=2, secure_aggregation=True,
                        checkpoint_dir={str(tmp_path / "ck")!r}, base_dir={str(tmp_path)!r})
        result = run(cfg)
        print(json.dumps({{"opened": opened, "accuracy": result.history[-1].accuracy}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["accuracy"] > 0.5  # the clients did train on their data
    assert any("round-0002" in p for p in seen["opened"])  # the hook sees the server's own writes
    data_files = {str(p) for p in data.values()}
    assert not data_files & set(seen["opened"]), sorted(data_files & set(seen["opened"]))
    assert not [p for p in seen["opened"] if p.endswith(".npz") and "round-" not in p]


@pytest.mark.parametrize("strategy", ["fedprox", {"name": "fedadam", "lr": 0.5}, {"name": "fedyogi", "lr": 0.5}])
def test_strategies_and_sampling_train_a_model(tmp_path: Path, data: dict, strategy: Any) -> None:
    result = run(make(tmp_path, data, rounds=4, strategy=strategy, fraction=0.6, min_clients=2))
    assert all(len(r.sampled) == 2 and r.status == "ok" for r in result.history)
    assert len({r.sampled for r in result.history}) > 1  # a different pair in some round
    first, last = result.history[0], result.history[-1]
    assert last.loss is not None and first.loss is not None and last.loss < first.loss
