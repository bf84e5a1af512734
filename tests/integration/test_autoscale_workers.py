"""Autoscaling with real workers: under a deep queue a stage grows towards ``max`` replicas,
idle it shrinks back to ``min``; on process workers and on Ray actors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from brickwork.graph import load_graph

YAML = """name: scaled
bricks:
  slow: {fake: true, delay_s: 0.05, worker: process,
          replicas: {min: 1, max: 3, up_after_s: 0.3, down_after_s: 1.0, interval_s: 0.1}}
graph: slow
"""


def _load(pipeline, stop: threading.Event) -> None:
    while not stop.is_set():
        pipeline.infer({"x": np.ones(1, np.float32)}, timeout_s=60)


def _replicas(pipeline) -> int:
    return pipeline.stats()["stages"]["slow"]["replicas"]


def _until(cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_deep_queue_adds_replicas_and_idleness_removes_them(tmp_path, backend, request):
    if backend == "ray":
        request.getfixturevalue("ray_cluster")
    f = tmp_path / "scaled.yaml"
    f.write_text(YAML)
    with load_graph(f).compile(backend=backend) as pipeline:
        assert _replicas(pipeline) == 1
        stop = threading.Event()
        callers = [threading.Thread(target=_load, args=(pipeline, stop)) for _ in range(12)]
        for t in callers:
            t.start()
        try:
            grew = _until(lambda: _replicas(pipeline) == 3, 120)
            answered = pipeline.stats()["stages"]["slow"]
        finally:
            stop.set()
            for t in callers:
                t.join(60)
        assert grew, pipeline.stats()["stages"]["slow"].get("autoscale")
        assert answered["autoscale"]["scaled_up"] >= 2
        assert _until(lambda: _replicas(pipeline) == 1, 60)
        info = pipeline.stats()["stages"]["slow"]
        assert info["autoscale"]["scaled_down"] >= 2 and info["live_replicas"] == 1
        assert pipeline.infer({"x": np.full(1, 3.0, np.float32)})["y"].tolist() == [3.0]
