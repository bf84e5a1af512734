"""SIGTERM drains in-flight requests; the CLI prints the port it picked; startup is quick."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
from tests.e2e.serve_helpers import start, stop, write_models


def test_sigterm_drains_in_flight_requests_then_exits_0(tmp_path):
    files = write_models(tmp_path)
    s = start(files, cwd=tmp_path)
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
        assert s.port > 0 and s.url.endswith(f":{s.port}")
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
