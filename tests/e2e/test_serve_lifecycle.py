"""SIGTERM drains in-flight requests; the CLI prints the port it picked; startup is quick."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx
import orjson
import pytest
from tests.e2e.serve_helpers import FRONTS, start, stop, write_models


@pytest.mark.parametrize("front", FRONTS)
def test_sigterm_drains_in_flight_requests_then_exits_0(tmp_path, front):
    files = write_models(tmp_path)
    s = start(files, "--http", front, cwd=tmp_path)
    try:
        body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                         "data": [504, 1, 1, 1]}]})  # the model takes 1 s
        result: dict[str, httpx.Response] = {}
        started = threading.Event()

        def slow() -> None:
            with httpx.Client(timeout=30) as http:
                started.set()
                result["r"] = http.post(s.url + "/v2/models/calc/infer", content=body)

        t = threading.Thread(target=slow)
        t.start()
        started.wait()
        with httpx.Client(timeout=5) as http:  # wait until the request is in flight
            deadline = time.monotonic() + 10
            while 'brickwork_requests_in_flight{model="calc"} 1' not in http.get(s.url + "/metrics").text:
                assert time.monotonic() < deadline, "the request never arrived"
        s.proc.send_signal(15)
        t.join(30)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json()["outputs"][0]["data"] == [1008, 2, 2, 2]
        assert s.proc.wait(30) == 0
    finally:
        stop(s.proc)


def test_port_0_is_printed_and_ready_quickly(tmp_path):
    files = write_models(tmp_path)
    t0 = time.monotonic()
    s = start(files, cwd=tmp_path)
    try:
        took = time.monotonic() - t0
        assert s.port > 0 and s.url == f"http://127.0.0.1:{s.port}"  # --host defaults to loopback
        assert took < 10  # generous: the goal (< 1 s) is measured by bench/peers, not asserted
    finally:
        stop(s.proc)


def test_two_workers_share_the_port_and_stop_together(tmp_path):
    files = write_models(tmp_path)
    s = start(files, "--workers", "2", cwd=tmp_path)
    try:
        body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                         "data": [1, 2, 3, 4]}]})
        with httpx.Client(timeout=10) as http:
            for _ in range(20):
                r = http.post(s.url + "/v2/models/calc/infer", content=body)
                assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [2, 4, 6, 8]
        children = [int(p) for p in
                    open(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children").read().split()]
        assert len(children) == 2
        s.proc.send_signal(15)
        assert s.proc.wait(30) == 0
        for pid in children:  # every worker is gone too
            try:
                state = open(f"/proc/{pid}/stat").read().split()[2]
            except FileNotFoundError:
                continue
            assert state == "Z"  # exited, waiting to be reaped
    finally:
        stop(s.proc)


MARKED_PY = '''
import time
from pathlib import Path


def marked(x: float) -> float:
    """Says it has started on x (a file; the warm-up call sends zeros), then takes 2 s."""
    Path(f"started-{x:g}").touch()
    time.sleep(2.0)
    return 2 * x
'''

MARKED_YAML = """name: marked
bricks:
  marked: {python: "marked_model:marked", outputs: y, blocking: true}
graph: marked
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_refuses_new_connections_while_the_in_flight_request_finishes(tmp_path, workers):
    (tmp_path / "marked_model.py").write_text(MARKED_PY)
    (tmp_path / "marked.yaml").write_text(MARKED_YAML)
    s = start([tmp_path / "marked.yaml"], "--workers", str(workers), cwd=tmp_path)
    try:
        reply: dict[str, httpx.Response] = {}

        def call() -> None:
            body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1],
                                             "data": [21.0]}]})
            with httpx.Client(timeout=30) as http:
                reply["r"] = http.post(s.url + "/v2/models/marked/infer", content=body)

        t = threading.Thread(target=call)
        t.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "started-21").exists():  # the model is running the request
            assert time.monotonic() < deadline, "the request never reached the model"
            time.sleep(0.01)
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while True:  # the listener closes at once; until then a connect may still land
            try:
                socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
            except ConnectionRefusedError:
                break
            except ConnectionResetError:  # with --workers, one worker's copy of the listening
                pass  # socket was closing: not served either; go on until it is refused
            assert time.monotonic() < deadline, "new connections still accepted 1 s after SIGTERM"
        assert t.is_alive(), "the request was no longer in flight when the listener closed"
        t.join(30)
        assert reply["r"].status_code == 200, reply["r"].text
        assert reply["r"].json()["outputs"][0]["data"] == [42.0]
        assert reply["r"].headers["connection"] == "close"
        assert s.proc.wait(30) == 0
    finally:
        stop(s.proc)
