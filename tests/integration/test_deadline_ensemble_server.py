"""A deadline ensemble behind the real v2 HTTP server: who answered is on the wire
(``parameters["members.<ensemble>"]``) and in /metrics."""

from __future__ import annotations

import numpy as np

import brickwork as bw
from brickwork.client import Client
from brickwork.server import ServerThread
from brickwork.testing import FakeBrick


def voter(name: str, *, delay_s: float = 0.0) -> bw.Node:
    return bw.brick(FakeBrick(name, dtype="INT64", output_name="label", delay_s=delay_s))


def test_members_on_the_wire_and_in_metrics():
    g = bw.ensemble([voter("camera"), voter("radar"), voter("lidar", delay_s=1.5)],
                    deadline_s=0.1, name="sensors")
    with ServerThread(g.compile(name="fusion")) as server, Client(server.url) as client:
        out = client.infer("fusion", {"x": np.asarray([5], np.int64)})
        assert out["label"].tolist() == [5]
        assert out.parameters["members.sensors"] == "camera,radar"
        assert out.members == {"sensors": ("camera", "radar")}
        text = client.metrics()
    assert 'brickwork_ensemble_member_answers_total{model="fusion",ensemble="sensors",member="camera"} 1' in text
    assert 'brickwork_ensemble_total{model="fusion",ensemble="sensors",outcome="stragglers"} 1' in text
