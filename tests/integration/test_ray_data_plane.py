"""The Ray actors' data plane (``cluster/_dataplane.py``) on a real Ray instance: batches of plain
tensors go to the actor over its own socket, with the same answers as Ray calls; the socket
listens on the node's address only and refuses a connection without the actor's token; an actor
killed while computing a batch sent that way is handled as any actor death (retried, replaced)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from brickwork.cluster._dataplane import ACK, BATCH, FRAME, HEADER, MAGIC
from brickwork.cluster._frames import pack, unpack
from brickwork.errors import ModelError
from brickwork.graph import load_graph

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _pipeline(tmp_path: Path, fn: str, ray_keys: str = "", name: str = "dp") -> Path:
    shutil.copy(ROOT / "tests" / "fixtures" / "ray_steps.py", tmp_path / "ray_steps.py")
    f = tmp_path / f"{name}.yaml"
    ray = f", ray: {{{ray_keys}}}" if ray_keys else ""
    f.write_text(f"name: {name}\nbricks:\n  m: {{python: 'ray_steps:{fn}', batch: true, outputs: y{ray}}}\n"
                 "graph: m\n")
    return f


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def test_batches_over_the_data_plane_answer_as_ray_calls_do(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(12, 1) + 8.0
    answers, modes = {}, {}
    for name, keys in (("on", ""), ("off", "data_plane: false")):
        with load_graph(_pipeline(tmp_path, "fail_on_7", keys, name=name)).compile(backend="ray") as pipeline:
            answers[name] = pipeline.infer({"x": x})["y"]
            # an error raised by the brick comes back as the same error either way
            with pytest.raises(ModelError, match="seven is refused"):
                pipeline.infer({"x": np.array([[7.0]], np.float32)})
            assert pipeline.infer({"x": x[:3]})["y"].tolist() == [[16.0], [18.0], [20.0]]
            info = pipeline.stats()["stages"]["m"]["replica_info"][0]
            modes[name] = info["data_plane"]
            assert info["deaths"] == 0
    assert modes == {"on": True, "off": False}
    np.testing.assert_array_equal(answers["on"], answers["off"])
    np.testing.assert_array_equal(answers["on"], x * 2.0)


def test_the_data_plane_listens_on_the_node_address_and_wants_the_token(tmp_path):
    import ray

    with load_graph(_pipeline(tmp_path, "fail_on_7")).compile(backend="ray") as pipeline:
        info = pipeline.stats()["stages"]["m"]["replica_info"][0]
        actor = ray.get_actor(info["actor"], namespace=info["namespace"])
        host, port, token = ray.get(actor.endpoint.remote())
        assert host == ray.util.get_node_ip_address() == "127.0.0.1"
        listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port]
        assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1 only, never 0.0.0.0

        frame = pack({"x": np.array([[1.0], [2.5]], np.float32)}, {})
        wrong = bytes(b ^ 1 for b in token)
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(MAGIC + wrong + HEADER.pack(len(frame), BATCH) + frame)
            try:  # closed without a byte (a reset, as the batch it sent was left unread): refused
                answered = _recv_exact(sock, HEADER.size)
            except ConnectionResetError:
                answered = b""
            assert answered == b""

        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(MAGIC + token)
            assert HEADER.unpack(_recv_exact(sock, HEADER.size)) == (0, ACK)
            sock.sendall(HEADER.pack(len(frame), BATCH) + frame)
            length, tag = HEADER.unpack(_recv_exact(sock, HEADER.size))
            assert tag == FRAME
            over_socket, _ = unpack(_recv_exact(sock, length))
        over_ray, _ = unpack(ray.get(actor.run_frame.remote(frame)))
        assert over_socket.keys() == over_ray.keys() == {"y"}
        np.testing.assert_array_equal(over_socket["y"], over_ray["y"])
        np.testing.assert_array_equal(over_socket["y"], [[2.0], [5.0]])
        # the pipeline's own connection was not disturbed
        assert pipeline.infer({"x": np.array([[4.0]], np.float32)})["y"].tolist() == [[8.0]]
        assert pipeline.stats()["stages"]["m"]["replica_info"][0]["deaths"] == 0


def test_an_actor_killed_mid_batch_on_the_data_plane_is_retried_and_replaced(tmp_path):
    with load_graph(_pipeline(tmp_path, "slow_on_5")).compile(backend="ray") as pipeline:
        assert pipeline.infer({"x": np.array([[1.0]], np.float32)})["y"].tolist() == [[2.0]]
        info = pipeline.stats()["stages"]["m"]["replica_info"][0]
        assert info["data_plane"]
        victim = info["pid"]
        marker = tmp_path / f"started-{victim}"
        box: dict[str, object] = {}
        worker = threading.Thread(target=lambda: box.setdefault(
            "y", pipeline.infer({"x": np.array([[5.0]], np.float32)}, timeout_s=120)["y"].tolist()))
        worker.start()
        end = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < end, "the batch never started"
            time.sleep(0.02)
        os.kill(victim, signal.SIGKILL)
        worker.join(120)
        assert box["y"] == [[10.0]]  # retried once, on the replacement
        stats = pipeline.stats()["stages"]["m"]
        assert stats["crashes"] == 1 and stats["retries"] == 1
        info = stats["replica_info"][0]
        assert info["alive"] and info["pid"] != victim and info["deaths"] == 1 and info["data_plane"]
        assert pipeline.infer({"x": np.array([[3.0]], np.float32)})["y"].tolist() == [[6.0]]


def test_a_data_plane_connection_broken_mid_batch_is_handled_as_the_actors_death(tmp_path):
    # the actor itself stays up (Ray sees nothing): only the socket tells the ingress
    with load_graph(_pipeline(tmp_path, "slow_on_5")).compile(backend="ray") as pipeline:
        assert pipeline.infer({"x": np.array([[1.0]], np.float32)})["y"].tolist() == [[2.0]]
        (replica,) = pipeline._executor.stages["m"].replicas
        victim = replica.pid
        box: dict[str, object] = {}
        worker = threading.Thread(target=lambda: box.setdefault(
            "y", pipeline.infer({"x": np.array([[5.0]], np.float32)}, timeout_s=120)["y"].tolist()))
        worker.start()
        marker = tmp_path / f"started-{victim}"
        end = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < end, "the batch never started"
            time.sleep(0.02)
        conn = replica._conn
        assert conn is not None
        replica._loop.call_soon_threadsafe(conn.transport.abort)
        worker.join(120)
        assert box["y"] == [[10.0]]  # failed as a death, retried once on the replacement
        stats = pipeline.stats()["stages"]["m"]
        assert stats["crashes"] == 1 and stats["retries"] == 1
        info = stats["replica_info"][0]
        assert info["alive"] and info["pid"] != victim and info["deaths"] == 1 and info["data_plane"]
        assert info["hangs"] == 0  # seen as a death at once, not by the watchdog
