"""start_method: ray: clients as Ray actors (a local Ray), with secure aggregation and a client
that SIGKILLs its actor process in round 2; its actor is replaced for round 3."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration import fed_kit

from brickwork.federated import ClientEntry, FedConfig, run

ray = pytest.importorskip("ray")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_actors_survive_a_killed_actor(tmp_path: Path, ray_cluster: str) -> None:
    data = fed_kit.split(tmp_path / "data", sites=3)
    per = {0: {"fault": "sigkill", "on_round": 2}}
    cfg = FedConfig(name="ray", client="tests.integration.fed_kit:faulty",
                    clients=tuple(ClientEntry(f"site{i}", str(data[f"site{i}"]), per.get(i, {})) for i in range(3)),
                    test=str(data["test"]), rounds=3, secure_aggregation=True, min_clients=2, deadline_s=60,
                    start_method="ray", checkpoint_dir=str(tmp_path / "ck"), base_dir=str(tmp_path))
    result = run(cfg)  # on the session's Ray instance (tests/ray_kit.py: loopback only)
    r1, r2, r3 = result.history
    assert r1.status == "ok" and len(r1.answered) == 3
    assert r2.status == "ok" and "site0" not in r2.answered and "crashed" in r2.dropped["site0"]
    assert r3.status == "ok" and len(r3.answered) == 3  # a new actor for site0
    assert r3.accuracy is not None and r3.accuracy > 0.5
