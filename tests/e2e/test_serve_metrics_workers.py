"""`brickwork serve --workers 2`: one /metrics scrape, whichever worker answers it, sums every
worker's figures; the exposition parses with prometheus_client's own parser, and every family
has HELP and TYPE."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.e2e import serve_helpers as sh

parser = pytest.importorskip("prometheus_client.parser")

MODELS = '''
import os
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]


class Out(TypedDict):
    y: Vec
    pid: Annotated[np.ndarray, bw.Tensor("INT64", ())]


def who(x: Vec) -> Out:
    """y = 2x, and the PID of the server worker that answered (the brick runs inline)."""
    return {"y": x * 2, "pid": np.full(len(x), os.getpid(), dtype=np.int64)}
'''
YAML = """name: who
bricks:
  who: {python: "models:who", batch: true}
graph: who
"""
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def _value(text: str, sample: str, **labels: str) -> float:
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {sample}{labels} in:\n{text}")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    folder: Path = tmp_path_factory.mktemp("metrics_workers")
    (folder / "models.py").write_text(MODELS)
    (folder / "who.yaml").write_text(YAML)
    served = sh.start([folder / "who.yaml"], "--workers", "2", "--grpc-port", "0", cwd=folder)
    try:
        yield served
    finally:
        sh.stop(served.proc)


def test_one_scrape_sums_every_worker(two_workers):
    url = two_workers.url
    pids: set[int] = set()
    sent = 0
    while (len(pids) < 2 or sent < 40) and sent < 2000:  # a new connection each: the kernel spreads them
        with httpx.Client(timeout=10.0) as http:
            r = http.post(url + "/v2/models/who/infer", json=BODY)
        assert r.status_code == 200, r.text
        pids.add(int(r.json()["outputs"][1]["data"][0]))
        sent += 1
    assert len(pids) == 2, f"every request landed on one worker ({pids}) in {sent} connections"
    assert os.getpid() not in pids
    bad = 0
    for _ in range(3):  # a bad request too: counted by status and kind
        with httpx.Client(timeout=10.0) as http:
            assert http.post(url + "/v2/models/who/infer", json={"inputs": []}).status_code == 400
        bad += 1
    for _ in range(6):  # several scrapes on new connections: whichever worker answers, the same sums
        with httpx.Client(timeout=10.0) as http:
            text = http.get(url + "/metrics").text
        assert _value(text, "brickwork_requests_total", model="who", code="200") == sent
        assert _value(text, "brickwork_requests_total", model="who", code="400") == bad
        assert _value(text, "brickwork_request_errors_total", model="who", kind="InvalidInput") == bad
        assert _value(text, "brickwork_request_duration_seconds_count", model="who") == sent + bad
        assert _value(text, "brickwork_request_duration_seconds_bucket", model="who", le="+Inf") == sent + bad
        assert _value(text, "brickwork_requests_in_flight", model="who") == 0


def test_both_workers_serve_grpc_on_the_one_port_and_are_counted(two_workers):
    """SO_REUSEPORT: new gRPC channels land on both workers; /metrics counts them all."""
    grpcclient = pytest.importorskip("tritonclient.grpc")
    (line,) = [ln for ln in two_workers.output if "gRPC on " in ln]
    target = line.rsplit(" on ", 1)[1].strip()
    with httpx.Client(timeout=10.0) as http:
        before = _value(http.get(two_workers.url + "/metrics").text, "brickwork_requests_total",
                        model="who", code="200")
    pids: set[int] = set()
    sent = 0
    while (len(pids) < 2 or sent < 10) and sent < 500:
        client = grpcclient.InferenceServerClient(target)  # a new channel: a new connection
        try:
            x = grpcclient.InferInput("x", [1, 4], "FP32")
            x.set_data_from_numpy(np.ones((1, 4), np.float32))
            pids.add(int(client.infer("who", [x]).as_numpy("pid")[0]))
            sent += 1
        finally:
            client.close()
    assert len(pids) == 2, f"every gRPC channel landed on one worker ({pids}) in {sent} channels"
    with httpx.Client(timeout=10.0) as http:
        after = _value(http.get(two_workers.url + "/metrics").text, "brickwork_requests_total",
                       model="who", code="200")
    assert after - before == sent


def test_stage_figures_are_summed_within_a_second_or_so(two_workers):
    url = two_workers.url
    with httpx.Client(timeout=10.0) as http:
        before = _value(http.get(url + "/metrics").text, "brickwork_requests_total", model="who", code="200")
    deadline = time.monotonic() + 15
    while True:  # other workers publish their stage figures each second
        with httpx.Client(timeout=10.0) as http:
            text = http.get(url + "/metrics").text
        items = _value(text, "brickwork_stage_items_total", stage="who")
        if items == before or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert items == before
    assert _value(text, "brickwork_stage_replicas", stage="who") == 2  # one inline replica per worker


def test_exposition_parses_and_every_family_has_help_and_type(two_workers):
    with httpx.Client(timeout=10.0) as http:
        http.post(two_workers.url + "/v2/models/who/infer", json=BODY)
        text = http.get(two_workers.url + "/metrics").text
    families = _families(text)  # raises on a malformed exposition
    assert {"brickwork_requests", "brickwork_request_duration_seconds", "brickwork_stage_items"} <= set(families)
    assert families["brickwork_request_duration_seconds"].type == "histogram"
    helps = {ln.split()[2] for ln in text.splitlines() if ln.startswith("# HELP ")}
    types = {ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")}
    named = {ln.split("{")[0].split(" ")[0] for ln in text.splitlines() if ln and not ln.startswith("#")}
    for sample in named:
        base = next((f for f in types if sample == f or sample.startswith(f + "_")), None)
        assert base is not None, f"{sample} has no # TYPE"
        assert base in helps, f"{base} has no # HELP"
    assert helps == types


def test_single_worker_exposition_too(tmp_path):
    files = sh.write_models(tmp_path)
    with sh.served(files, cwd=tmp_path) as s, httpx.Client(timeout=10.0) as http:
        x = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        for _ in range(5):
            assert http.post(s.url + "/v2/models/calc/infer", json=x).status_code == 200
        text = http.get(s.url + "/metrics").text
    assert _value(text, "brickwork_requests_total", model="calc", code="200") == 5
    assert _families(text)["brickwork_request_duration_seconds"].type == "histogram"
    assert np.isclose(_value(text, "brickwork_request_duration_seconds_count", model="calc"), 5)
