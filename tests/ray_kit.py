"""One real Ray instance for the whole test session (``ray.init`` costs seconds here), every
listener on 127.0.0.1, its session folder in a short private temp dir that is removed after."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """Start Ray in this process (the test driver); yields the cluster's address, which
    subprocesses (``brickwork serve --backend ray --ray-address ...``) join."""
    # before Ray is imported (it reads them at import): every listener and every advertised
    # address on 127.0.0.1, never the machine's external address; no usage reporting
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray")
    from ray._private import ray_constants

    assert not ray_constants.ENABLE_RAY_CLUSTER, "ray was imported before the loopback setting"
    temp = tempfile.mkdtemp(prefix="bwr-", dir="/tmp")  # Unix socket paths must stay < 108 bytes
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
             num_cpus=4, object_store_memory=512 << 20, _temp_dir=temp, _node_ip_address="127.0.0.1")
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield address
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 15
        while processes_mentioning(temp) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_mentioning(temp)
        for pid in left:  # ray.shutdown() stops what it started; anything still there is a leak
            os.kill(pid, signal.SIGKILL)
        # Ray's agents (renamed ``ray::DashboardAgent``, so not found by command line) poll for
        # their raylet and linger up to a minute after it: they are this instance's, stop them
        for pid in processes_holding(temp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes outlived ray.shutdown(): {left}"


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def processes_holding(path: str) -> list[int]:
    """Processes (not this one) with a file open under ``path``."""
    pids = []
    for fds in Path("/proc").glob("[0-9]*/fd"):
        if int(fds.parent.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd).startswith(path) for fd in fds.iterdir()):
                pids.append(int(fds.parent.name))
        except OSError:
            continue
    return pids
