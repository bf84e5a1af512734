"""`brickwork serve --backend ray` as a user runs it: two server processes join the test
session's Ray instance (loopback only) and share one set of actors; NVIDIA's tritonclient
works unchanged; stopping the ingress that created the actors leaves the other serving. A server
with a private Ray instance stops cleanly on SIGTERM and leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from tests.e2e.serve_helpers import start, stop, write_models
from tests.ray_kit import processes_holding, processes_mentioning

httpclient = pytest.importorskip("tritonclient.http")


def _total(url: str) -> np.ndarray:
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"), network_timeout=120)
    try:
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        inp = httpclient.InferInput("x", [2, 4], "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        res = client.infer("calc", [inp], outputs=[httpclient.InferRequestedOutput("total")])
        return res.as_numpy("total")
    finally:
        client.close()


def _calc_actors() -> list[dict]:
    import ray

    return [a for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"].startswith("brickwork.calc.")]


def test_two_ingresses_share_actors_and_survive_each_other(tmp_path, ray_cluster):
    files = write_models(tmp_path)
    args = ("--backend", "ray", "--ray-address", ray_cluster)
    first = start(files, *args, cwd=tmp_path, timeout_s=180)
    second = None
    try:
        np.testing.assert_array_equal(_total(first.url), [6.0, 22.0])
        assert [a["name"] for a in _calc_actors()] == ["calc/0"]
        second = start(files, *args, cwd=tmp_path, timeout_s=180)
        np.testing.assert_array_equal(_total(second.url), [6.0, 22.0])
        assert len(_calc_actors()) == 1  # the second ingress attached; it loaded no copy of its own
        assert stop(first.proc) == 0  # the creator leaves and takes its actors with it...
        # ...the other ingress notices, re-creates the actor and keeps answering
        np.testing.assert_array_equal(_total(second.url), [6.0, 22.0])
        assert len(_calc_actors()) == 1
    finally:
        stop(first.proc)
        if second is not None:
            stop(second.proc)
    assert _calc_actors() == []  # the last ingress took its actors along


def test_a_private_instance_stops_on_sigterm_and_leaves_no_session_folder(tmp_path):
    files = write_models(tmp_path)
    ray_tmp = tempfile.mkdtemp(prefix="bwr-", dir="/tmp")  # Unix socket paths stay short
    try:
        env = {"RAY_TMPDIR": ray_tmp, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
               "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        served = start(files, "--backend", "ray", cwd=tmp_path, timeout_s=180, env=env)
        try:
            np.testing.assert_array_equal(_total(served.url), [6.0, 22.0])
            sessions = list(Path(ray_tmp).rglob("session_2*"))
            assert sessions, "the private instance keeps its files under RAY_TMPDIR"
        finally:
            # a clean exit: before, Ray's crash handler aborted the ingress 3 s after SIGTERM
            # (exit status -6), cutting the drain short and skipping the exit handlers
            code = stop(served.proc, timeout_s=60)
        assert code == 0
        deadline = time.monotonic() + 15
        while _ours(ray_tmp) and time.monotonic() < deadline:
            time.sleep(0.2)
        # by command line (raylet, GCS, workers) or by open files (the agents, renamed by Ray)
        assert not _ours(ray_tmp), "a Ray process outlived its ingress"
        assert list(Path(ray_tmp).rglob("session_*")) == []  # Ray never removes one; the ingress did
    finally:
        for pid in _ours(ray_tmp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _ours(ray_tmp: str) -> set[int]:
    return set(processes_mentioning(ray_tmp)) | set(processes_holding(ray_tmp))
